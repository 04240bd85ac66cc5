"""Trials fused into one grouped network train as they would alone (trainer/fused.py)."""

from __future__ import annotations

import pytest
import torch

from trainer import ConfigError, NonFiniteLossError, TrainConfig
from trainer.augment import eval_batches, train_batches
from trainer.data import ImageData, ImageSplit
from trainer.epoch import Training, evaluate, train_one_epoch
from trainer.fused import FusedNetwork, evaluate_fused, train_fused_epoch
from trainer.loop import start_training
from trainer.model import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = torch.device("cpu")
SMALL = {"image_size": 16, "batch_size": 8, "epochs": 2}
# Three kinds of optimizer, each with its own lr, seed, schedule and label smoothing; 6 steps an
# epoch, so 12 steps pass RAdam's rectification (step 6) and two Lookahead syncs (k = 6).
TRIALS = (
    TrainConfig(**SMALL, optimizer="sgd", momentum=0.9, lr=0.05, seed=1, label_smoothing=0.1),
    TrainConfig(**SMALL, optimizer="adam", lr=2e-3, seed=2, schedule="onecycle"),
    TrainConfig(**SMALL, optimizer="ranger", lr=8e-3, seed=3, warmup_epochs=0.5),
)
DIVERGING = TrainConfig(**SMALL, optimizer="sgd", momentum=0.9, lr=1e12, seed=4)
# Fused and alone compute the same functions, but a grouped convolution and a batched matmul sum
# their products in another order than the plain kernels: they differ by rounding. In float32 that
# is ~1e-7 at the first step, and then a ReLU or max-pool input within rounding of its kink takes
# the other side, BatchNorm over a small batch spreads the change over its channel, and two runs
# of noise training drift apart within a few steps whatever fuses them. In float64 no input lies
# that close to a kink: measured, the final weights and BatchNorm buffers agree within 1e-8
# relative (5e-11 absolute), the losses to the float32 the loop sums them in (val loss: 1e-7).
DTYPE = torch.float64
TOLERANCE = {"rtol": 1e-6, "atol": 1e-9}


def random_data(classes: int = 3, train: int = 48, val: int = 24, side: int = 16) -> ImageData:
    """Noise images with random labels: enough to train on, nothing to learn."""
    generator = torch.Generator().manual_seed(0)

    def split(count: int) -> ImageSplit:
        shape = (count, 3, side, side)
        images = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
        return ImageSplit(images, torch.randint(0, classes, (count,), generator=generator))

    return ImageData(tuple(f"class_{i}" for i in range(classes)), split(train), split(val), "noise")


@pytest.fixture(scope="module")
def data() -> ImageData:
    return random_data()


def start(config: TrainConfig, data: ImageData) -> Training:
    """The run `trainer.loop.train` starts for `config`: its model, optimizer, schedule, batches;
    in DTYPE (the optimizer's parameters change type in place)."""
    run = start_training(config, len(data.classes), len(data.train), CPU, compile=False)
    run.model.to(DTYPE)
    return run


def in_dtype(batches):
    return ((images.to(DTYPE), labels) for images, labels in batches)


def epoch_batches(config: TrainConfig, data: ImageData, run: Training):
    return in_dtype(
        train_batches(
            data.train,
            batch_size=config.batch_size,
            image_size=config.image_size,
            min_scale=config.min_scale,
            generator=run.generator,
        )
    )


def val_batches(data: ImageData):
    return in_dtype(eval_batches(data.val, batch_size=16, image_size=SMALL["image_size"]))


def final_state(run: Training) -> dict:
    """What a checkpoint holds of the trial's tensors: its weights and BatchNorm buffers, and its
    optimizer's per-parameter state (momentum, moments, Lookahead's slow weights, step counts)."""
    return {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict()["state"]}


def train_alone(config: TrainConfig, data: ImageData):
    """Per-step losses, per-epoch (val top-1, val loss) and final state of `config` trained
    alone, step by step through the loop's own `train_one_epoch`."""
    run = start(config, data)
    losses, scores = [], []
    for epoch in range(1, config.epochs + 1):
        for batch in epoch_batches(config, data, run):
            losses.append(
                train_one_epoch(
                    run.model,
                    [batch],
                    run.optimizer,
                    run.scheduler,
                    epoch=epoch,
                    label_smoothing=config.label_smoothing,
                )
            )
        scores.append(evaluate(run.model, val_batches(data)))
    return losses, scores, final_state(run)


def train_fused(configs: tuple[TrainConfig, ...], data: ImageData, *, step_by_step: bool = False):
    """The same as `train_alone` for all `configs` at once; each epoch's outcome per trial is a
    loss per step (`step_by_step`) or the epoch's mean loss or NonFiniteLossError."""
    runs = [start(config, data) for config in configs]
    network = FusedNetwork([run.model for run in runs])
    outcomes, scores = [], []
    for epoch in range(1, configs[0].epochs + 1):
        steps = zip(*(epoch_batches(config, data, run) for config, run in zip(configs, runs)))
        for group in ([step] for step in steps) if step_by_step else [steps]:
            outcomes.append(
                train_fused_epoch(
                    network,
                    group,
                    [run.optimizer for run in runs],
                    [run.scheduler for run in runs],
                    epochs=[epoch] * len(runs),
                    label_smoothing=[config.label_smoothing for config in configs],
                )
            )
        scores.append(evaluate_fused(network, val_batches(data)))
    return outcomes, scores, [final_state(run) for run in runs]


def test_fused_trials_train_as_they_do_alone(data):
    outcomes, scores, states = train_fused(TRIALS, data, step_by_step=True)
    for slot, config in enumerate(TRIALS):
        losses, alone_scores, alone_state = train_alone(config, data)
        assert len(losses) == 12
        torch.testing.assert_close([step[slot] for step in outcomes], losses, **TOLERANCE)
        assert [score[slot][0] for score in scores] == [top1 for top1, _ in alone_scores]
        torch.testing.assert_close(
            [score[slot][1] for score in scores], [loss for _, loss in alone_scores], **TOLERANCE
        )
        # Under the same names, num_batches_tracked and the optimizers' step counts included
        torch.testing.assert_close(states[slot], alone_state, **TOLERANCE)


def test_a_diverging_trial_fails_alone_and_leaves_the_others_untouched():
    """The same group with its middle trial diverging, and healthy: the others' numbers match.
    One epoch of 3 steps: the cost is the network's 11 M parameters a step, not the images."""
    data = random_data(train=24)
    first, second, third = (config.replace(epochs=1) for config in TRIALS)
    healthy_outcomes, healthy_scores, healthy_states = train_fused((first, second, third), data)
    diverging = DIVERGING.replace(epochs=1)
    [outcomes], scores, states = train_fused((first, diverging, third), data)
    # Its own NaN check, at the end of the epoch's 3 steps
    assert isinstance(outcomes[1], NonFiniteLossError)
    assert (outcomes[1].epoch, outcomes[1].step) == (1, 3)
    for slot in (0, 2):
        assert outcomes[slot] == healthy_outcomes[0][slot]
        assert scores[0][slot] == healthy_scores[0][slot]
        # Bitwise: the grouped kernels compute each trial's block from its own values only
        for name, tensor in states[slot]["model"].items():
            assert torch.equal(tensor, healthy_states[slot]["model"][name]), name


def test_only_resnets_of_one_architecture_fuse():
    with pytest.raises(ConfigError, match="cannot fuse SqueezeNet models"):
        FusedNetwork([build_model(3, CPU, "squeezenet1_1")])
    with pytest.raises(ConfigError, match="trial 1's model with trial 0's"):
        FusedNetwork([build_model(3, CPU), build_model(4, CPU)])


def test_trials_with_other_batch_sizes_are_refused(data):
    configs = (TRIALS[0], TRIALS[1].replace(batch_size=4))
    with pytest.raises(ConfigError, match="batch_size and image_size"):
        train_fused(configs, data)
