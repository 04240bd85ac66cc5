"""Runs that take turns in one process (a worker's slots, trainer.rounds) each train as they would
alone, though the model is one that does not fuse and draws dropout from torch's global random
state."""

from __future__ import annotations

import pytest

from trainer import TrainConfig
from trainer.checkpoint import CheckpointPolicy
from trainer.data import load_image_data
from trainer.epoch import EpochMetrics, Steps
from trainer.loop import train, training
from trainer.rounds import EpochRunner

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# MobileNetV3's classifier has dropout (p 0.2); small and quick at 32 px. Three steps an epoch.
DROPOUT = {"image_size": 32, "batch_size": 8, "model": "mobilenet_v3_small", "optimizer": "adam"}
FIRST = TrainConfig(**DROPOUT, epochs=3, lr=1e-3, seed=1)
SECOND = TrainConfig(**DROPOUT, epochs=2, lr=3e-3, seed=2)


@pytest.fixture
def data(image_folder, cache_dir):
    return load_image_data(image_folder, 32, cache_dir=cache_dir, progress=False).cap_per_class(8)


def numbers(history) -> list[tuple[float, float]]:
    return [(metrics.train_loss, metrics.val_loss) for metrics in history]


def in_rounds(runs: list[tuple[int, Steps]]) -> list:
    """Drive the runs (coroutines of `training`, each with the round it joins at) through one
    EpochRunner, a round at a time as a worker's slots do; their results in order."""
    runner, waiting, results = EpochRunner(), {}, {}
    round_number = 0
    while len(results) < len(runs):
        round_number += 1
        for index, (joins, steps) in enumerate(runs):
            if joins == round_number:
                waiting[index] = (steps, next(steps))
        outcomes = runner.run([work for _, work in waiting.values()])
        for (index, (steps, _)), outcome in zip(list(waiting.items()), outcomes):
            try:
                waiting[index] = (steps, steps.send(outcome))
            except StopIteration as done:
                results[index] = done.value
                del waiting[index]
    return [results[index] for index in sorted(results)]


def test_runs_taking_turns_draw_their_dropout_as_they_would_alone(data):
    """The second run starts (and seeds) while the first is in its second epoch: both drew from
    one global stream, reset by the second's seed, and trained otherwise than alone."""
    alone = [numbers(train(config, data).history) for config in (FIRST, SECOND)]
    together = in_rounds([(1, training(FIRST, data)), (2, training(SECOND, data))])
    assert [numbers(result.history) for result in together] == alone


def test_a_run_that_took_turns_resumes_as_it_would_have_gone_on(data, tmp_path):
    """Its checkpoint, written after the round, holds its own random state, not the one the run
    trained after it in the round left."""

    class Killed(Exception):
        pass

    def die_after_second(epoch: int, metrics: EpochMetrics) -> None:
        if epoch == 2:
            raise Killed

    policy = CheckpointPolicy(tmp_path / "first")
    with pytest.raises(Killed):
        in_rounds(
            [
                (1, training(FIRST, data, die_after_second, checkpoints=policy)),
                (1, training(SECOND, data)),  # trains after the first in each round
            ]
        )
    resumed = train(FIRST, data, checkpoints=CheckpointPolicy(tmp_path / "first"), resume=True)
    assert resumed.resumed_from_epoch == 1
    assert numbers(resumed.history) == numbers(train(FIRST, data).history)
