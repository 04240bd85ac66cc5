"""Every private name of Optuna that hpsearch uses, and nowhere else: what each does for us, and
why no public API serves.

An Optuna release may rename or reshape any of them. `tests/study/test_optuna_compat.py` checks
that each still exists with the shape used here, and `check_version`
(search.study.optuna_version) stops hpsearch with one line on an Optuna outside the range that
test (and the suite) pass on, instead of letting a worker die mid-search on an AttributeError.
Upgrading Optuna means: widen SUPPORTED_OPTUNA and setup.cfg together, run the suite, and mend
what the compat test names.

What we need that Optuna keeps private:
- the storage and ids behind a study and a trial: we move trials between states ourselves
  (claiming a queued retry, failing a dead worker's trial), which `Study.tell` cannot do for a
  trial this process did not ask for;
- forgetting the study's per-thread list of trials after such a move, as `Study.ask` does;
- a subclass of Optuna's cache of finished trials whose reads may lag (`LaggingCache`), and
  which writes a parameter of a trial it has not read;
- a few statements of `RDBStorage` run in one transaction of ours (several user attributes at
  once, a state change and a trial's creation that a retry recognises: Optuna's cache creates
  trials through the private `_create_new_trial`, which `TrialsCreatedOnce` replaces), and the
  list of its methods, each a transaction, that `search.study.resilience` wraps to wait out an
  outage;
- the names of its tables, whose write privileges a role must hold (search.study.writable);
- a new channel for the gRPC proxy's client (`new_channel`), after an outage, and the proxy's
  server as an object stopped before its storage is closed (`grpc_proxy_server`).
"""

from __future__ import annotations

import inspect
import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.orm
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._cached_storage import _CachedStorage

# The proxy's server, not started: run_grpc_proxy_server (public) gives no handle to stop it by
from optuna.storages._grpc.server import make_server as grpc_proxy_server  # noqa: F401
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search import attrs
from search.attrs import CREATION

# --- a study and its trials, as its storage knows them --------------------------------------------


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage a study reads and writes through (Optuna's cache in front of a database).
    `Study` keeps it private, and a storage opened again would bypass that cache."""
    return study._storage


def study_id_of(study: optuna.Study) -> int:
    """The storage's number for the study, as storage calls and the dashboard's URLs take it;
    asking the storage for it by name (public) costs a query each time."""
    return study._study_id


def trial_id_of(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's number for a trial: storage calls take it, and no public attribute holds it
    (`number` counts within the study)."""
    return trial._trial_id


def claim(study: optuna.Study, queued: FrozenTrial) -> optuna.Trial | None:
    """Take a WAITING trial for this worker (WAITING to RUNNING, which the storage lets one caller
    alone do) as a live trial; None if another worker took it first.

    `Study.ask` would take the oldest WAITING trial of any kind, and only while the budget allows a
    new one; a retry or a paused trial's continuation must run first and whatever the budget.
    """
    try:
        claimed = storage_of(study).set_trial_state_values(
            trial_id_of(queued), state=TrialState.RUNNING
        )
    except UpdateFinishedTrialError:  # another worker took it and finished it meanwhile
        return None
    _forget_cached_trials(study)
    return optuna.Trial(study, trial_id_of(queued)) if claimed else None


def new_trial(study: optuna.Study) -> optuna.Trial:
    """A new RUNNING trial, without `Study.ask`'s taking of the oldest WAITING trial (a paused
    trial's continuation waits for its promotion instead)."""
    _forget_cached_trials(study)
    return optuna.Trial(study, storage_of(study).create_new_trial(study_id_of(study)))


def enqueue(study: optuna.Study, params: dict[str, Any], user_attrs: dict[str, Any]) -> int:
    """`Study.enqueue_trial`, which answers nothing, returning the queued trial's number: a log
    line names it, since queued trials take numbers and the log's numbers skip them otherwise."""
    template = optuna.trial.create_trial(
        state=TrialState.WAITING, system_attrs={"fixed_params": params}, user_attrs=user_attrs
    )
    storage = storage_of(study)
    return storage.get_trial_number_from_id(
        storage.create_new_trial(study_id_of(study), template_trial=template)
    )


def end_claimed(
    study: optuna.Study, trial: FrozenTrial, state: TrialState, user_attrs: dict[str, Any]
) -> bool:
    """End a trial this process did not ask for (a dead worker's, a closed continuation), its
    attributes written first; False when another caller ended it first. `Study.tell` accepts only
    trials of `Study.ask`."""
    storage = storage_of(study)
    try:
        for key, value in user_attrs.items():
            storage.set_trial_user_attr(trial_id_of(trial), key, value)
        return storage.set_trial_state_values(trial_id_of(trial), state=state)
    except UpdateFinishedTrialError:
        return False


def _forget_cached_trials(study: optuna.Study) -> None:
    # A study keeps its last list of trials per thread; Study.ask clears it after taking a trial,
    # and so must we after changing one behind the study's back.
    study._thread_local.cached_all_trials = None


# --- several user attributes in one transaction ---------------------------------------------------


def database_behind(storage: BaseStorage) -> BaseStorage:
    """The storage behind Optuna's cache of finished trials, or the storage itself (the gRPC
    proxy has none)."""
    return storage._backend if isinstance(storage, _CachedStorage) else storage


def optuna_tables() -> list[str]:
    """The tables RDBStorage keeps studies and trials in, each of which a worker writes (its
    schema's version table aside, written only when the schema is made): no public API lists
    them, and search.study.writable asks a role's privileges on each."""
    version = models.VersionInfoModel.__tablename__
    return [
        table.name for table in models.BaseModel.metadata.sorted_tables if table.name != version
    ]


def remember_user_attrs(trial: optuna.Trial, values: dict[str, Any]) -> None:
    """What `Trial.set_user_attr` keeps in the live trial after writing: our one-transaction write
    must leave the trial reading back what it wrote."""
    trial._cached_frozen_trial.user_attrs.update(values)


def write_trial_user_attrs(storage: RDBStorage, trial_id: int, values: dict[str, Any]) -> None:
    """Several user attributes in one transaction: one commit, where `set_trial_user_attr` makes
    one a key. Optuna's own statements, as its `_create_new_trial` runs them."""
    with _create_scoped_session(storage.scoped_session, True) as session:
        for key, value in values.items():
            storage._set_trial_attr_without_commit(
                session, models.TrialUserAttributeModel, trial_id, key, value
            )


def write_trial_state(
    storage: RDBStorage,
    trial_id: int,
    state: TrialState,
    values: Sequence[float] | None,
    stamp: datetime,
) -> bool:
    """`set_trial_state_values` as Optuna's, except that the trial's start (for RUNNING) or end
    (for a finished state) is `stamp`, chosen once by the caller for all attempts of one call.

    An attempt whose commit was made but whose answer was lost (the connection dropped after
    COMMIT) is retried; the retry then finds the trial already in `state` and would fail ("has
    already finished") or, for a claim, answer that another worker took it. A trial in `state`
    with our stamp is our own earlier attempt's work: done, True. The stamp has microseconds
    (PostgreSQL, SQLite), so another caller's change never carries it; MySQL keeps whole seconds,
    so there a retry answers as Optuna's would.
    """
    try:
        with _create_scoped_session(storage.scoped_session) as session:
            trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
            if trial.state == state and _stamp(trial, state) == stamp:
                return True
            storage.check_trial_is_updatable(trial_id, trial.state)
            for objective, value in enumerate(values or ()):
                storage._set_trial_value_without_commit(session, trial, objective, value)
            if state == TrialState.RUNNING and trial.state != TrialState.WAITING:
                return False
            trial.state = state
            if state == TrialState.RUNNING:
                trial.datetime_start = stamp
            if state.is_finished():
                trial.datetime_complete = stamp
    except sqlalchemy.exc.IntegrityError:  # as Optuna's
        return False
    return True


class TrialsCreatedOnce(RDBStorage):
    """An RDBStorage whose trial and study creations are safe to retry when the answer to their
    commit was lost (`create_trial_once`, `create_study_once`, which search.study.resilience
    retries through an outage).

    Optuna's `_create_new_trial` tries five times on any database error, and a retry after a commit
    that was made inserts a second trial: a RUNNING one that no worker trains (the dead-trial sweep
    fails it later, one trial of the budget spent on nothing), or a point queued twice. Optuna's
    cache calls that private method directly, so it is the one replaced. A retried study creation
    found its own study's name taken, and took it for another run's: a study without settings.
    """

    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        name = study_name or f"no-name-{uuid.uuid4()}"  # as Optuna names a study given none
        return self.create_study_once(directions, name, attrs.Creation())

    def create_study_once(
        self, directions: Sequence[StudyDirection], study_name: str, creation: attrs.Creation
    ) -> int:
        """Optuna's statements, the study tagged with the creation's name in the same transaction;
        an attempt after the first that finds the name taken by a study so tagged made it."""
        creation.attempts += 1
        try:
            with _create_scoped_session(self.scoped_session) as session:
                objectives = [
                    models.StudyDirectionModel(objective=objective, direction=direction)
                    for objective, direction in enumerate(directions)
                ]
                study = models.StudyModel(study_name=study_name, directions=objectives)
                tag = json.dumps(creation.name)
                session.add(
                    models.StudySystemAttributeModel(study=study, key=CREATION, value_json=tag)
                )
        except sqlalchemy.exc.IntegrityError:
            if creation.attempts == 1 or self._creation_of(study_name) != creation.name:
                raise DuplicatedStudyError(f"another study is named {study_name!r}") from None
        return self.get_study_id_from_name(study_name)

    def _creation_of(self, study_name: str) -> Any:
        return self.get_study_system_attrs(self.get_study_id_from_name(study_name)).get(CREATION)

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self._create_new_trial(study_id, template_trial)._trial_id

    def _create_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None = None
    ) -> FrozenTrial:
        return self.create_trial_once(study_id, template_trial, attrs.Creation.of(template_trial))

    def create_trial_once(
        self, study_id: int, template: FrozenTrial | None, creation: attrs.Creation
    ) -> FrozenTrial:
        """Optuna's statements, in one attempt that tags its trial with the creation's name; an
        attempt after the first returns the trial of the study so tagged, if an earlier attempt
        made it. The study's row is locked first, as in Optuna's, so creations in one study run
        one at a time and the trial numbers count up without gaps."""
        tagged = attrs.template_of_new_trial(template)
        tagged.system_attrs[attrs.CREATION] = creation.name
        creation.attempts += 1
        with _create_scoped_session(self.scoped_session) as session:
            models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
            made = None
            if creation.attempts > 1:  # the first has nothing to find: the name is new
                made = _trial_created_by(session, study_id, creation.name)
            if made is None:
                made = self._get_prepared_new_trial(study_id, tagged, session)
            tagged.number, tagged.datetime_start = made.number, made.datetime_start
            tagged._trial_id = made.trial_id
            return tagged


def _trial_created_by(
    session: sqlalchemy.orm.Session, study_id: int, creation: str
) -> models.TrialModel | None:
    attribute = models.TrialSystemAttributeModel
    return (
        session.query(models.TrialModel)
        .join(attribute, attribute.trial_id == models.TrialModel.trial_id)
        .filter(
            models.TrialModel.study_id == study_id,
            attribute.key == attrs.CREATION,
            attribute.value_json == json.dumps(creation),
        )
        # The latest: a trial copied into the study (add_trial) may carry its source's name too
        .order_by(models.TrialModel.trial_id.desc())
        .first()
    )


def _stamp(trial: models.TrialModel, state: TrialState) -> datetime | None:
    if state == TrialState.RUNNING:
        return trial.datetime_start
    return trial.datetime_complete if state.is_finished() else None


# Methods of RDBStorage that only read, by their names' beginnings; any other may write.
READ_PREFIXES = ("get_", "_get_", "check_")


def storage_transactions() -> list[str]:
    """Every method of the storage API and of RDBStorage, its private ones included, each running
    whole transactions of its own: Optuna's cache calls private ones (`_get_trials`) directly, so
    wrapping the public ones alone would leave its reads unguarded. Static helpers aside."""
    names = {*vars(BaseStorage), *vars(RDBStorage)}
    return sorted(
        name
        for name in names
        if not name.startswith("__")
        and inspect.isfunction(inspect.getattr_static(RDBStorage, name))
    )


# --- a worker's cache of finished trials, whose pruner reads may lag ------------------------------


class LaggingCache(_CachedStorage):
    """Optuna's cache of finished trials, whose reads may reuse a recent one (`lagging_reads`).

    Optuna keeps finished trials in memory, but every read still asks the database for every
    unfinished trial with all their attributes: one query set per read, growing with the number
    of workers. The pruner reads the study at every epoch of every trial, and its answer hardly
    moves in a few seconds (it compares with trials that finished). The only hook is the private
    method that reads from the database; no public option bounds how often it runs.
    """

    def __init__(self, backend: RDBStorage) -> None:
        super().__init__(backend)
        self._read_at: dict[int, float] = {}  # per study: when the database was last asked
        self._lag = threading.local()  # seconds a read in this thread may lag, 0 outside

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: optuna.distributions.BaseDistribution,
    ) -> None:
        # Optuna's refuses (KeyError) a trial it has neither made nor read: the gRPC proxy, once
        # started again, for a worker's running trial (the worker died of it). To the database,
        # which knows the trial or raises the same KeyError; the cache reads it at its next read.
        with self._lock:
            known = trial_id in self._trial_id_to_study_id_and_number
        write = super().set_trial_param if known else self._backend.set_trial_param
        write(trial_id, param_name, param_value_internal, distribution)

    def _read_trials_from_remote_storage(self, study_id: int) -> None:
        lag = getattr(self._lag, "seconds", 0.0)
        if lag and time.monotonic() - self._read_at.get(study_id, float("-inf")) < lag:
            return
        super()._read_trials_from_remote_storage(study_id)
        self._read_at[study_id] = time.monotonic()

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        del state["_lag"]
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._lag = threading.local()


def cached_storage(storage: BaseStorage) -> BaseStorage:
    """What a worker opens its study on, and the gRPC proxy serves: a database behind a
    LaggingCache; any other storage (the proxy's client: the proxy caches) as it is. Every read
    stays fresh outside `lagging_reads`, as with Optuna's own cache."""
    return LaggingCache(storage) if isinstance(storage, RDBStorage) else storage


@contextmanager
def lagging_reads(study: optuna.Study, seconds: float) -> Iterator[None]:
    """Within: the study's reads in this thread reuse a read younger than `seconds`."""
    storage = storage_of(study)
    if not isinstance(storage, LaggingCache):
        yield
        return
    storage._lag.seconds = seconds
    try:
        yield
    finally:
        storage._lag.seconds = 0.0


# --- the gRPC proxy's client ----------------------------------------------------------------------


def new_channel(proxy: optuna.storages.GrpcStorageProxy) -> None:
    """A new channel (and empty cache) for the client, as its unpickling makes them: gRPC's own,
    once a connection failed, waits up to two minutes between tries. The old one closes when the
    last call on it (another thread's) ends."""
    proxy._setup()
