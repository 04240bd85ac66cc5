"""The client of `hpsearch grpc-proxy` that workers use, as sure-footed as a direct connection to
the database (search.study.resilience): every call waits out a proxy that is down (restarted,
moved to another node, or the network to it lost) with the same backoff and limit, a failed call
leaves a new channel for the next try (a heartbeat's included), and the writes that would do harm
if done twice recognise an earlier attempt whose answer was lost.

The proxy carries out a request and then loses the connection before its answer arrives: the
client hears only UNAVAILABLE, as for a request that never arrived, and tries again.
- A trial's creation is tagged with a name the client chooses (`hpsearch:creation`, which the
  proxy's storage keeps), and a retry first looks for a trial so tagged: one trial, not two.
- A retried finish of a trial an earlier attempt finished is told "already finished": the trial
  read back in the asked state with the asked values is that attempt's work, done.
- A retried creation of a study an earlier attempt made is told the name is taken: the study
  of that name is that attempt's.
Left as Optuna's: a retried claim of a queued trial (WAITING to RUNNING) that the lost attempt
made answers that another worker took it; that trial is then failed by the dead-trial sweep, as
for a worker killed at that moment, and its point queued again.

An outage that outlasts the wait is one line naming the proxy. `grpc_proxy_answers` tells whether
a proxy answers at all, for a worker that waits for one still starting beside it.
"""

from __future__ import annotations

import functools
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from optuna.exceptions import DuplicatedStudyError, ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, GrpcStorageProxy
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search import attrs
from search.attrs import Creation, template_of_new_trial
from search.errors import StorageError, WaitStopped
from search.study.optuna_compat import new_channel, trial_id_of
from search.study.resilience import Unanswered, is_connection_error, storage_call


class ResilientGrpcStorage(GrpcStorageProxy):
    """Optuna's GrpcStorageProxy whose every call waits out an outage of the proxy."""

    def __init__(self, *, host: str, port: int) -> None:
        with warnings.catch_warnings():  # the class is Optuna's choice here, not the user's
            warnings.simplefilter("ignore", ExperimentalWarning)
            super().__init__(host=host, port=port)
        # An outage that outlasts the wait, in one line, where gRPC's many-line error ended a worker
        self._unanswered = Unanswered(
            f"gRPC proxy {host}:{port}",
            "check that its `hpsearch grpc-proxy` is up and reachable from here",
        )

    @property
    def shown(self) -> str:
        """The storage as a line names it: the proxy's address."""
        return self._unanswered.storage

    @property
    def url(self) -> str:
        """The URL that reaches it."""
        return f"grpc://{self._host}:{self._port}"

    def _call(self, name: str, work: Callable[[], Any]) -> Any:
        def attempt() -> Any:
            try:
                return work()
            except Exception as error:
                # The next try, this call's or a heartbeat's (which retries on its own), goes on a
                # new channel: the failed one would wait up to 2 minutes to connect again
                if is_connection_error(error):
                    new_channel(self)
                elif _failed_inside_the_proxy(error):
                    raise StorageError(
                        f"{self._unanswered.storage} failed the call inside its storage: its own "
                        "output (`hpsearch grpc-proxy`'s terminal or log) names the cause, such as "
                        "its database dropped or a right revoked"
                    ) from error
                raise

        return storage_call(name, attempt, self._unanswered)

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        creation = Creation()
        tagged = template_of_new_trial(template_trial)
        tagged.system_attrs[attrs.CREATION] = creation.name

        def attempt() -> int:
            creation.attempts += 1
            made = self._trial_created(study_id, creation.name) if creation.attempts > 1 else None
            if made is not None:
                return made
            return GrpcStorageProxy.create_new_trial(self, study_id, tagged)

        return self._call("create_new_trial", attempt)

    def _trial_created(self, study_id: int, creation: str) -> int | None:
        for trial in self.get_all_trials(study_id, deepcopy=False):
            if trial.system_attrs.get(attrs.CREATION) == creation:
                return trial_id_of(trial)
        return None

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        return self._write_once(
            "set_trial_state_values",
            lambda: GrpcStorageProxy.set_trial_state_values(self, trial_id, state, values),
            UpdateFinishedTrialError,  # "already finished"
            lambda: True if self._in_state(trial_id, state, values) else None,
        )

    def _in_state(self, trial_id: int, state: TrialState, values: Sequence[float] | None) -> bool:
        trial = self.get_trial(trial_id)
        return trial.state == state and trial.values == (list(values) if values else None)

    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        return self._write_once(
            "create_new_study",
            lambda: GrpcStorageProxy.create_new_study(self, directions, study_name),
            DuplicatedStudyError,  # "the name is taken"
            lambda: self.get_study_id_from_name(study_name) if study_name else None,
        )

    def _write_once(
        self,
        name: str,
        write: Callable[[], Any],
        refusal: type[Exception],
        earlier: Callable[[], Any],
    ) -> Any:
        """`write()`, waiting out outages; when a retry is refused as done already, `earlier()`
        tells whether the done write is an earlier attempt's (its answer, else None)."""
        tries = 0

        def attempt() -> Any:
            nonlocal tries
            tries += 1
            try:
                return write()
            except refusal:
                found = earlier() if tries > 1 else None
                if found is None:
                    raise
                return found

        return self._call(name, attempt)


def _failed_inside_the_proxy(error: BaseException) -> bool:
    """gRPC's UNKNOWN: the storage behind the proxy raised what Optuna's server turns into no
    code of its own; the client hears only Optuna's guess at the cause ("invalid data in the
    commit"), the proxy's terminal the storage's own words (search.serve.grpc_proxy)."""
    code = getattr(error, "code", None)
    is_grpc = type(error).__module__.split(".")[0] == "grpc" and callable(code)
    return is_grpc and code().name == "UNKNOWN"  # type: ignore[misc]


def _retried(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: ResilientGrpcStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(method.__name__, lambda: method(self, *args, **kwargs))

    return call


# The rest of the storage API: each a request or two that is safe to send again (a read, or a
# write of a value under a key)
for _name, _method in vars(BaseStorage).items():
    if callable(_method) and not _name.startswith("_") and _name not in vars(ResilientGrpcStorage):
        setattr(ResilientGrpcStorage, _name, _retried(getattr(GrpcStorageProxy, _name)))


# The first try at a gRPC proxy, at most: a refused connection fails within milliseconds, an
# address that drops packets only after this
GRPC_CONNECT_SECONDS = 10.0
GRPC_RETRY_MS = 500  # the longest pause between two tries at a proxy still starting


def grpc_proxy_answers(address: str, seconds: float, stop: threading.Event | None = None) -> bool:
    """Whether a gRPC server answers at `address` (host:port) within `seconds` (a proxy that is
    still starting beside its workers); with 0, whether the first try connects."""
    import grpc  # an optional dependency (hpsearch[grpc]); check_storage_url made sure of it

    ready, failed = threading.Event(), threading.Event()

    def watch(state: grpc.ChannelConnectivity) -> None:
        if state == grpc.ChannelConnectivity.READY:
            ready.set()
        elif state == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            failed.set()

    deadline = time.monotonic() + seconds
    # gRPC tries a refused address again after a backoff that grows to 2 minutes: a proxy that
    # came up 17 s into the wait was seen only 26 s in, past a 22 s wait. Trying twice a second
    # costs nothing on a refused connection.
    retry_often = [("grpc.max_reconnect_backoff_ms", GRPC_RETRY_MS)]
    with grpc.insecure_channel(address, options=retry_often) as channel:
        channel.subscribe(watch, try_to_connect=True)
        try:
            while not ready.wait(0.05):
                if stop is not None and stop.is_set():
                    raise WaitStopped("stopped while waiting for the gRPC proxy")
                now = time.monotonic()
                if now >= deadline and (failed.is_set() or now >= deadline + GRPC_CONNECT_SECONDS):
                    return False
            return True
        finally:
            channel.unsubscribe(watch)
