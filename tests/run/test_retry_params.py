"""A retry trains its lineage's parameters, whatever became of the attempts between."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from search.run import liveness, trial_files
from search.run.study_data import fingerprint, load_study_data
from search.run.worker import WorkerOptions, run_worker
from search.study import retries
from search.study.opening import open_study
from search.study.space import suggest
from search.study.storage import open_storage
from search.studyfile import load_study_config
from tests.helpers.studies import write_study
from trainer.checkpoint import CheckpointPolicy
from trainer.loop import train


def test_a_retry_killed_before_it_suggested_its_parameters_is_retried_with_its_lineages(
    tmp_path, image_folder, cache_dir, one_torch_thread
):
    # The chaos run (benchmarks/chaos, seed 1, chaos-12) killed the whole run just after a worker
    # claimed a paused trial's continuation: its retry sampled new parameters under the paused
    # trial's number and failed on its checkpoint ("ForeignCheckpoint: cannot resume from").
    config = load_study_config(
        write_study(tmp_path, image_folder, trials=1, epochs=2, pruner='kind = "none"')
    )
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    data = load_study_data(config, cache_dir, progress=False)
    study = open_study(config, open_storage(url), fingerprint(config, data))
    first = study.ask()
    suggest(first, config)
    # Its worker trained and wrote its checkpoint, then stopped: FAIL, a retry queued
    folder = trial_files.trial_folder(trial_files.study_folder(tmp_path / "checkpoints", study), 0)
    owner = trial_files.owner(study, study.trials[0])
    train(
        config.train_config(first.params),
        data,
        checkpoints=CheckpointPolicy(folder, every_epochs=1, owner=owner),
        device="cpu",
    )
    retries.queue_retry(study, study.tell(first, state=TrialState.FAIL), 2, "its worker stopped")
    # A worker claims the retry and is killed before its objective suggests the parameters
    assert retries.claim_retry(study) is not None
    assert liveness.fail_dead_trials(study, grace_seconds=0, max_retries=2) == [1]

    options = WorkerOptions(
        url, "cpu", cache_dir, progress=False, checkpoint_dir=tmp_path / "checkpoints"
    )
    run_worker(config, options)
    trials = optuna.load_study(study_name="test-study", storage=url).trials
    last = trials[-1]
    assert (len(trials), last.user_attrs["retry_of"]) == (3, 0)
    assert last.params == trials[0].params, "the retry sampled parameters of its own"
    assert last.state == TrialState.COMPLETE, last.user_attrs.get("fail_reason")
    assert last.user_attrs["resumed_from_epoch"] == 2
