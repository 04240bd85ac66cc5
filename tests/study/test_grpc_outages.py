"""Workers behind `hpsearch grpc-proxy` survive the proxy going away, as they survive a database
restart: the proxy killed for real (kill -9) and started again on its port, and answers lost for
real by a relay that closes the connection after the proxy carried out the request."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState

from benchmarks.chaos.proxy import Proxy as ProxyProcess
from search import attrs
from search.cli import main
from search.errors import StorageError
from search.study import resilience
from search.study.grpc_client import ResilientGrpcStorage, grpc_proxy_answers
from search.study.resilience import without_retries
from search.study.storage import open_storage
from tests.helpers.dashboard import free_port
from tests.helpers.lost_answers import RelayLosingAnswers
from tests.helpers.studies import write_study

grpc = pytest.importorskip("grpc")

MAXIMIZE = [StudyDirection.MAXIMIZE]


class Proxy(ProxyProcess):
    """`hpsearch grpc-proxy` in front of a SQLite file, in a process of its own (the chaos run's:
    `start` waits until it answers, `kill` is a SIGKILL), and what the database behind it holds."""

    def __init__(self, database: Path) -> None:
        super().__init__(f"sqlite:///{database}", database.with_name("grpc-proxy.log"))

    def study_names(self) -> list[str]:
        """The studies as the database holds them, read past the proxy."""
        return optuna.get_all_study_names(open_storage(self.storage, create=False))

    def trials(self) -> list[optuna.trial.FrozenTrial]:
        """The trials of its one study as the database holds them."""
        [name] = self.study_names()
        study = optuna.load_study(study_name=name, storage=open_storage(self.storage))
        return study.get_trials(deepcopy=False)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    proxy = Proxy(tmp_path / "behind-proxy.db")
    proxy.start()
    yield proxy
    proxy.kill()


def client(port: int) -> optuna.storages.BaseStorage:
    storage = open_storage(f"grpc://127.0.0.1:{port}", wait_seconds=60)
    storage.get_all_studies()  # its connection made, before an answer may be lost on it
    return storage


def test_a_study_and_a_trial_whose_creation_answers_are_lost_are_made_once(proxy):
    relay = RelayLosingAnswers(proxy.port)
    storage = client(relay.port)
    relay.lose_next_answer(made=lambda: proxy.study_names() == ["lost-creation"])
    study_id = storage.create_new_study(MAXIMIZE, "lost-creation")
    relay.lose_next_answer(made=lambda: len(proxy.trials()) == 1)
    trial_id = storage.create_new_trial(study_id)
    [trial] = proxy.trials()
    assert relay.answers_lost == 2 and storage.get_study_name_from_id(study_id) == "lost-creation"
    assert trial.state == TrialState.RUNNING and storage.get_trial(trial_id).number == trial.number
    assert isinstance(trial.system_attrs[attrs.CREATION], str)  # the client's name, kept


def test_a_finish_whose_answer_is_lost_is_done_once(proxy):
    relay = RelayLosingAnswers(proxy.port)
    storage = client(relay.port)
    trial_id = storage.create_new_trial(storage.create_new_study(MAXIMIZE, "lost-finish"))
    relay.lose_next_answer(made=lambda: proxy.trials()[0].state == TrialState.COMPLETE)
    assert storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.75]) is True
    assert relay.answers_lost == 1
    assert [(trial.state, trial.values) for trial in proxy.trials()] == [
        (TrialState.COMPLETE, [0.75])
    ]


def test_a_heartbeat_gets_through_as_soon_as_the_proxy_is_back(proxy):
    # A heartbeat tries once per interval and retries on its own: its failures, too, must leave a
    # channel that connects at the next beat, not when gRPC's backoff next tries (a trial that
    # beats too late is taken for dead)
    storage = client(proxy.port)
    trial_id = storage.create_new_trial(storage.create_new_study(MAXIMIZE, "beats"))
    beat = without_retries(storage, "set_trial_system_attr")
    proxy.kill()
    for second in range(4):  # as beats each second while it is down
        with pytest.raises(grpc.RpcError):
            beat(trial_id, attrs.HEARTBEAT, second)
        time.sleep(1)
    proxy.start()  # until it answers, on a connection of its own
    beat(trial_id, attrs.HEARTBEAT, 4.0)
    assert proxy.trials()[0].system_attrs[attrs.HEARTBEAT] == 4.0


def test_a_trial_made_before_a_proxy_restart_takes_its_parameters_after_it(proxy):
    # The proxy started again has read no trial yet; Optuna's cache refused a parameter of one it
    # had not read (KeyError: NOT_FOUND at the client, and the worker died), found by a chaos run
    storage = client(proxy.port)
    trial_id = storage.create_new_trial(storage.create_new_study(MAXIMIZE, "restarted"))
    proxy.kill()
    proxy.start()
    lr = optuna.distributions.FloatDistribution(1e-3, 1.0)
    storage.set_trial_param(trial_id, "lr", 0.5, lr)
    assert proxy.trials()[0].params == {"lr": 0.5}
    with pytest.raises(KeyError):  # a trial the database does not know is still refused
        storage.set_trial_param(trial_id + 1, "lr", 0.5, lr)


def test_a_search_goes_on_through_a_proxy_restart(
    proxy, tmp_path, image_folder, cache_dir, capsys, one_torch_thread
):
    path = write_study(
        tmp_path, image_folder, trials=2, epochs=3, pruner='kind = "none"', image_size=16
    )
    flags = ["--storage", f"grpc://127.0.0.1:{proxy.port}", "--cache-dir", str(cache_dir)]
    flags += ["--device", "cpu", "--no-progress", "--wait-for-storage", "60"]

    def restart_once_training() -> None:
        deadline = time.monotonic() + 120
        while not any(trial.intermediate_values for trial in proxy_trials()):
            assert time.monotonic() < deadline, "no epoch reported"
            time.sleep(0.1)
        proxy.kill()
        time.sleep(2)
        proxy.start()

    def proxy_trials() -> list[optuna.trial.FrozenTrial]:
        try:
            return proxy.trials()
        except Exception:  # noqa: BLE001 (no study yet)
            return []

    restarting = threading.Thread(target=restart_once_training)
    restarting.start()
    try:
        assert main(["run", str(path), *flags]) == 0, capsys.readouterr().err
    finally:
        restarting.join()  # before the fixture stops the proxy it may start
    trials = proxy.trials()
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * 2
    assert "storage unreachable" in capsys.readouterr().err


def test_a_proxy_that_comes_up_late_in_the_wait_is_found_before_it_ends():
    # gRPC's own backoff between tries at a refused address grows (to 2 minutes): a proxy up 6 s
    # into an 8 s wait was tried next 10 s in, and the worker gave up on it
    from concurrent import futures

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    servers = []

    def start() -> None:  # bound only now: until then a connection is refused
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        servers.append(server)

    late = threading.Timer(6.0, start)
    late.start()
    try:
        assert grpc_proxy_answers(f"127.0.0.1:{port}", 8.0)
    finally:
        late.join()
        for server in servers:
            server.stop(0)


def test_a_proxy_down_longer_than_the_wait_is_one_line_naming_it(monkeypatch):
    """gRPC's many-line UNAVAILABLE error had ended the worker, as a traceback, once the wait for
    the proxy ran out; it is one line now, as a database's outage is. A port nothing listens on."""
    monkeypatch.setattr(resilience, "MAX_OUTAGE_SECONDS", 0.3)  # 600 s by default
    port = free_port()
    storage = ResilientGrpcStorage(host="127.0.0.1", port=port)
    with pytest.raises(StorageError) as unanswered:
        storage.get_all_studies()
    message = str(unanswered.value)
    assert "\n" not in message and message.startswith(f"gRPC proxy 127.0.0.1:{port} did not answer")
    assert "(UNAVAILABLE: " in message and "`hpsearch grpc-proxy` is up and reachable" in message
