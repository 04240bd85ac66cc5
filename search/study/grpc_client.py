"""The client of `hpsearch grpc-proxy` that workers use, as sure-footed as a direct connection to
the database (search.study.resilience): every call waits out a proxy that is down (restarted,
moved to another node, or the network to it lost) with the same backoff and limit, on a new
channel at each try, and the writes that would do harm if done twice recognise an earlier
attempt whose answer was lost.

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
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from optuna.exceptions import DuplicatedStudyError, ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, GrpcStorageProxy
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search import attrs
from search.study.optuna_compat import (
    Creation,
    new_channel,
    template_of_new_trial,
    trial_id_of,
)
from search.study.resilience import storage_call


class ResilientGrpcStorage(GrpcStorageProxy):
    """Optuna's GrpcStorageProxy whose every call waits out an outage of the proxy."""

    def __init__(self, *, host: str, port: int) -> None:
        with warnings.catch_warnings():  # the class is Optuna's choice here, not the user's
            warnings.simplefilter("ignore", ExperimentalWarning)
            super().__init__(host=host, port=port)

    def _call(self, name: str, work: Callable[[], Any]) -> Any:
        return storage_call(name, work, reconnect=lambda: new_channel(self))

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
        tries = 0

        def attempt() -> bool:
            nonlocal tries
            tries += 1
            try:
                return GrpcStorageProxy.set_trial_state_values(self, trial_id, state, values)
            except UpdateFinishedTrialError:
                if tries == 1 or not self._in_state(trial_id, state, values):
                    raise
                return True

        return self._call("set_trial_state_values", attempt)

    def _in_state(self, trial_id: int, state: TrialState, values: Sequence[float] | None) -> bool:
        trial = self.get_trial(trial_id)
        return trial.state == state and trial.values == (list(values) if values else None)

    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        tries = 0

        def attempt() -> int:
            nonlocal tries
            tries += 1
            try:
                return GrpcStorageProxy.create_new_study(self, directions, study_name)
            except DuplicatedStudyError:
                if tries == 1 or study_name is None:
                    raise
                return self.get_study_id_from_name(study_name)

        return self._call("create_new_study", attempt)


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
