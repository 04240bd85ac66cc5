"""Trials fused in one network that run out of GPU memory together: the group's fault, not any
member's. Each stops (its last finished epoch stands), is queued to resume, and resumes in a
smaller group; none is a FAIL its hyperparameters never caused, which the sampler would learn.

No GPU runs here, so the card is played by the fused network: it raises CUDA's own
`torch.cuda.OutOfMemoryError`, as PyTorch's allocator does, for more than two trials fused, from
the group's second epoch on (the first passed: a card's memory fills as its cache fragments)."""

from __future__ import annotations

import weakref

import pytest
import torch
from optuna.trial import TrialState

from search import attrs
from search.cli import main
from tests.helpers.studies import trials_of, write_study
from trainer.fused import FusedNetwork

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FOUR_POINTS = "".join(
    f'[[points]]\noptimizer = "{optimizer}"\nlr = {lr}\n'
    for optimizer, lr in (("sgd", 0.01), ("adam", 1e-3), ("ranger", 1e-3), ("sgd", 0.05))
)


@pytest.fixture
def card_for_two(monkeypatch):
    """Fused networks of more than two trials run out of memory once they have evaluated once."""
    forward = FusedNetwork.__call__
    evaluated: weakref.WeakSet[FusedNetwork] = weakref.WeakSet()

    def on_a_card_for_two(network: FusedNetwork, images: torch.Tensor) -> torch.Tensor:
        if not network._template.training:
            evaluated.add(network)
        elif len(network.members) > 2 and network in evaluated:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(network, images)

    monkeypatch.setattr(FusedNetwork, "__call__", on_a_card_for_two)


@pytest.mark.usefixtures("card_for_two")
def test_a_fused_group_out_of_memory_resumes_in_halves_and_fails_no_trial(
    tmp_path, image_folder, cache_dir, capfd
):
    path = write_study(
        tmp_path, image_folder, trials=4, epochs=2, points=FOUR_POINTS, pruner='kind = "none"'
    )
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    command = ["run", str(path), "--storage", url, "--device", "cpu", "--no-progress"]
    assert main([*command, "--cache-dir", str(cache_dir), "--trials-per-worker", "4"]) == 0

    trials = trials_of(url)
    stopped, resumed = trials[:4], trials[4:]
    assert [trial.state for trial in stopped] == [TrialState.FAIL] * 4
    assert attrs.stopped_numbers(trials) == {0, 1, 2, 3}, "stopped to resume, not failed for good"
    assert all(
        trial.user_attrs[attrs.FAIL_REASON]
        == "stopped in epoch 2 (out of device memory with 4 trials fused in one network)"
        for trial in stopped
    )
    # Each resumes its own lineage from its first epoch, two at a time, and finishes
    assert [trial.state for trial in resumed] == [TrialState.COMPLETE] * 4
    assert sorted(trial.user_attrs[attrs.RETRY_OF] for trial in resumed) == [0, 1, 2, 3]
    assert [trial.user_attrs[attrs.RESUMED_FROM_EPOCH] for trial in resumed] == [1] * 4
    assert all(
        [epoch["fused_trials"] for epoch in trial.user_attrs[attrs.HISTORY]] == [4, 2]
        for trial in resumed
    )
    assert all(trial.user_attrs[attrs.FAULTS] == 0 for trial in resumed), "no retry spent"

    err = capfd.readouterr().err
    assert (
        "out of device memory with 4 trials fused in one network: this worker trains at most 2 at "
        "once from now on" in err
    )
    assert "worker finished 4 trial(s)" in err
    assert "stopped, queued to resume" not in err, "it resumed them itself"
