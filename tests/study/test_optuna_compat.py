"""Optuna's private names, as search.study.optuna_compat relies on them, on the installed Optuna.

Each test names what a new Optuna release would break: run this file first after an upgrade.
"""

from __future__ import annotations

import configparser
import inspect
import re
import threading
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState

from search.cli import main
from search.study import optuna_compat, optuna_version
from search.study.optuna_compat import (
    LaggingCache,
    cached_storage,
    claim,
    end_claimed,
    grpc_proxy_server,
    lagging_reads,
    new_trial,
    storage_transactions,
    write_trial_state,
    write_trial_user_attrs,
)
from search.study.optuna_version import SUPPORTED_OPTUNA, UnsupportedOptuna
from search.study.storage import open_storage

ROOT = Path(__file__).resolve().parents[2]
# A private name of Optuna's, as our code would spell it: an attribute or a module path
PRIVATE_OPTUNA = re.compile(
    r"\._(storage|study_id|trial_id|thread_local|backend|cached_frozen_trial)\b"
    r"|optuna\.storages\._|_CachedStorage|_create_scoped_session|_without_commit"
    r"|_read_trials_from_remote_storage|_create_new_trial|_get_prepared_new_trial|\._setup\("
)


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    return optuna.create_study(study_name="s", storage=cached_storage(storage))


def test_the_private_names_exist_with_the_shapes_we_use(study):
    trial = study.ask()
    frozen = study.get_trials(deepcopy=False)[0]
    assert isinstance(study._storage, LaggingCache) and isinstance(study._study_id, int)
    assert isinstance(study._storage._backend, RDBStorage)
    assert hasattr(study._thread_local, "cached_all_trials")
    assert isinstance(trial._trial_id, int) and frozen._trial_id == trial._trial_id
    assert isinstance(trial._cached_frozen_trial, FrozenTrial)
    assert isinstance(trial._cached_frozen_trial.user_attrs, dict)
    assert parameters(_CachedStorage.__init__) == ["self", "backend"]
    assert parameters(_CachedStorage._read_trials_from_remote_storage) == ["self", "study_id"]
    assert parameters(_create_scoped_session)[:2] == ["scoped_session", "ignore_integrity_error"]
    assert parameters(RDBStorage._set_trial_attr_without_commit) == [
        *("self", "session", "model_cls", "trial_id", "key", "value")
    ]
    assert parameters(RDBStorage._set_trial_value_without_commit) == [
        *("self", "session", "trial", "objective", "value")
    ]
    assert parameters(models.TrialModel.find_or_raise_by_id) == [
        "trial_id",
        "session",
        "for_update",
    ]
    assert hasattr(models, "TrialUserAttributeModel")
    assert parameters(RDBStorage._get_prepared_new_trial) == [
        *("self", "study_id", "template_trial", "session")
    ]
    assert parameters(RDBStorage._create_new_trial) == ["self", "study_id", "template_trial"]
    assert parameters(optuna.storages.GrpcStorageProxy._setup) == ["self"]  # new_channel
    assert parameters(grpc_proxy_server)[:3] == ["storage", "host", "port"]
    assert isinstance(study._storage._trial_id_to_study_id_and_number, dict)  # LaggingCache
    assert hasattr(study._storage._lock, "acquire")


def test_trials_are_created_through_our_one_attempt_whichever_way_they_are_asked_for(study):
    # Optuna's cache calls its backend's private _create_new_trial, which TrialsCreatedOnce
    # replaces: a new Optuna calling another method would bypass the tag (and the lost-answer fix)
    study.ask()
    study.enqueue_trial({"x": 0.5})
    optuna_compat.new_trial(study)
    optuna_compat.enqueue(study, {"x": 0.25}, {})
    trials = study.get_trials()
    assert [trial.state for trial in trials] == [TrialState.RUNNING, TrialState.WAITING] * 2
    assert [trial.number for trial in trials] == [0, 1, 2, 3]
    assert len({trial.system_attrs["hpsearch:creation"] for trial in trials}) == 4


def test_every_storage_call_is_a_transaction_we_wrap():
    names = storage_transactions()
    # the public API, and the private reads Optuna's cache makes directly
    public = [
        name for name, _ in inspect.getmembers(optuna.storages.BaseStorage, inspect.isfunction)
    ]
    assert {name for name in public if not name.startswith("_")} <= set(names)
    assert "_get_trials" in names
    # reads are told from writes by their names: a write named like a read would skip the lock
    reads = [name for name in names if name.startswith(optuna_compat.READ_PREFIXES)]
    assert "get_all_trials" in reads and "set_trial_state_values" not in reads


def test_claim_takes_a_waiting_trial_once(study):
    study.enqueue_trial({"x": 1.0})
    queued = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))[0]
    claimed = claim(study, queued)
    assert claimed is not None and claimed.number == queued.number
    assert study.get_trials(deepcopy=False)[0].state == TrialState.RUNNING
    assert claim(study, queued) is None  # RUNNING already: another worker's
    study.tell(claimed, 0.5)
    assert claim(study, queued) is None  # finished


def test_new_trial_leaves_the_queue_alone(study):
    study.enqueue_trial({"x": 1.0})
    trial = new_trial(study)
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states == {0: TrialState.WAITING, trial.number: TrialState.RUNNING}


def test_end_claimed_ends_a_trial_once_with_its_attributes(study):
    trial = study.ask()
    frozen = study.get_trials(deepcopy=False)[0]
    assert end_claimed(study, frozen, TrialState.FAIL, {"fail_reason": "dead"})
    assert not end_claimed(study, frozen, TrialState.FAIL, {"fail_reason": "again"})
    ended = study.get_trials(deepcopy=False)[trial.number]
    assert ended.state == TrialState.FAIL and ended.user_attrs == {"fail_reason": "dead"}


def test_writes_in_one_transaction_read_back(study):
    trial = study.ask()
    database = study._storage._backend
    write_trial_user_attrs(database, trial._trial_id, {"a": 1, "b": [2]})
    stored = database.get_trial(trial._trial_id)
    assert stored.user_attrs == {"a": 1, "b": [2]}


def test_a_state_change_made_again_with_its_stamp_is_recognised(study):
    # What a retry does after the answer to its commit was lost (tests/study/test_lost_answers.py)
    study.enqueue_trial({"x": 1.0})
    database, trial_id = study._storage._backend, study.get_trials()[0]._trial_id
    ours, later = datetime(2026, 1, 2, 3, 4, 5, 678901), datetime(2026, 1, 2, 3, 4, 6)
    assert write_trial_state(database, trial_id, TrialState.RUNNING, None, ours)
    assert write_trial_state(database, trial_id, TrialState.RUNNING, None, ours)
    assert not write_trial_state(database, trial_id, TrialState.RUNNING, None, later)
    assert write_trial_state(database, trial_id, TrialState.COMPLETE, [0.5], later)
    assert write_trial_state(database, trial_id, TrialState.COMPLETE, [0.5], later)
    with pytest.raises(UpdateFinishedTrialError):
        write_trial_state(database, trial_id, TrialState.FAIL, None, later + timedelta(seconds=1))
    stored = database.get_trial(trial_id)
    assert (stored.state, stored.value) == (TrialState.COMPLETE, 0.5)
    assert (stored.datetime_start, stored.datetime_complete) == (ours, later)


def test_reads_lag_only_inside_lagging_reads(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    ours = optuna.create_study(study_name="s", storage=cached_storage(open_storage(url)))
    theirs = optuna.load_study(study_name="s", storage=open_storage(url))  # another worker
    ours.get_trials()  # a fresh read, as a worker makes before each trial
    theirs.tell(theirs.ask(), 1.0)
    with lagging_reads(ours, seconds=60):
        lagged = len(ours.get_trials())
    assert (lagged, len(ours.get_trials())) == (0, 1)


def test_a_lagging_cache_survives_pickling(tmp_path):
    # A spawned worker process receives its storage pickled
    import pickle

    storage = cached_storage(open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    copy = pickle.loads(pickle.dumps(storage))
    assert isinstance(copy, LaggingCache) and isinstance(copy._lag, type(threading.local()))


def test_setup_cfg_declares_the_tested_range():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    requirements = config["options"]["install_requires"].splitlines()
    assert f"optuna{SUPPORTED_OPTUNA}" in [line.strip() for line in requirements]


@pytest.mark.parametrize("version", ["3.6.2", "4.4.0", "6.0.0", "6.1.0rc1"])
def test_an_optuna_outside_the_range_is_one_line(version, monkeypatch, capsys):
    with pytest.raises(UnsupportedOptuna, match=re.escape(f"optuna{SUPPORTED_OPTUNA}")):
        optuna_version.check_version(version)
    monkeypatch.setattr(optuna, "__version__", version)
    assert main(["status"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"Optuna {version} is installed" in error
    assert not Path("hpsearch.db").exists()  # refused before the storage was made


@pytest.mark.parametrize("version", ["4.5.0", "4.9.0", "5.1.0", optuna.__version__])
def test_an_optuna_within_the_range_is_taken(version):
    optuna_version.check_version(version)


def test_no_private_optuna_name_outside_the_compat_module():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in ("search", "trainer")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "optuna_compat.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE_OPTUNA.search(line)
    ]
    assert found == []
