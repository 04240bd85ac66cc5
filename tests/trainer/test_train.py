"""The training loop on small images: learning, determinism, resume, divergence, optimizers."""

from __future__ import annotations

import pytest
import torch

from trainer import NonFiniteLossError, TrainConfig
from trainer.augment import train_batches
from trainer.checkpoint import CheckpointPolicy
from trainer.config import OPTIMIZER_SETTINGS
from trainer.data import load_image_data
from trainer.epoch import train_one_epoch
from trainer.errors import ConfigError
from trainer.loop import resumable_classes, train
from trainer.model import build_model
from trainer.optim import build_optimizer, build_scheduler, lr_factor

SMALL = {
    "image_size": 32,
    "batch_size": 16,
    "epochs": 2,
    "optimizer": "adam",
    "lr": 2e-3,
    "seed": 3,
}


@pytest.fixture
def data(image_folder, cache_dir):
    return load_image_data(image_folder, 32, cache_dir=cache_dir, progress=False)


def test_training_learns_well_above_chance(data):
    result = train(TrainConfig(**{**SMALL, "epochs": 5, "schedule": "onecycle"}), data)
    chance = 1 / len(data.classes)
    assert result.best.val_top1 >= chance + 0.4, [m.val_top1 for m in result.history]
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_same_seed_and_config_give_the_same_numbers(data):
    first = train(TrainConfig(**SMALL), data)
    second = train(TrainConfig(**SMALL), data)
    assert first.history and [(m.val_loss, m.train_loss) for m in first.history] == [
        (m.val_loss, m.train_loss) for m in second.history
    ]
    third = train(TrainConfig(**{**SMALL, "seed": 4}), data)
    assert third.history[-1].train_loss != first.history[-1].train_loss


def test_callback_sees_every_epoch_and_can_stop_the_run(data):
    seen = []

    class Stop(Exception):
        pass

    def on_epoch(epoch, metrics):
        seen.append((epoch, metrics.epoch))
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train(TrainConfig(**{**SMALL, "epochs": 4}), data, on_epoch)
    assert seen == [(1, 1), (2, 2)]


def test_resume_ends_where_an_uninterrupted_run_would(data, tmp_path):
    config = TrainConfig(**{**SMALL, "epochs": 3, "optimizer": "sgd", "momentum": 0.9, "lr": 0.05})
    uninterrupted = train(config, data)

    class Killed(Exception):
        pass

    # Epoch 2 is reported before its checkpoint is written: dying there leaves epoch 1's
    def die_at_second(epoch, metrics):
        if epoch == 2:
            raise Killed

    policy = CheckpointPolicy(tmp_path / "ckpt", every_epochs=1)
    with pytest.raises(Killed):
        train(config, data, die_at_second, checkpoints=policy)
    assert policy.path.exists()
    resumed = train(config, data, checkpoints=CheckpointPolicy(tmp_path / "ckpt"), resume=True)
    assert resumed.resumed_from_epoch == 1
    assert [m.epoch for m in resumed.history] == [1, 2, 3]
    assert [m.val_loss for m in resumed.history] == [m.val_loss for m in uninterrupted.history]
    assert (tmp_path / "ckpt" / "weights.pt").exists()


def test_checkpoint_loads_with_weights_only(data, tmp_path):
    policy = CheckpointPolicy(tmp_path / "ckpt", every_epochs=1)
    train(TrainConfig(**{**SMALL, "epochs": 1, "optimizer": "ranger"}), data, checkpoints=policy)
    state = torch.load(policy.path, weights_only=True)
    assert state["epoch"] == 1 and state["config"]["optimizer"] == "ranger"
    assert set(state["rng"]) >= {"torch", "batches"}


def test_resume_with_other_settings_is_refused(data, tmp_path):
    policy = CheckpointPolicy(tmp_path / "ckpt")
    train(TrainConfig(**{**SMALL, "epochs": 1}), data, checkpoints=policy)
    with pytest.raises(ValueError, match="lr=0.002"):
        train(
            TrainConfig(**{**SMALL, "epochs": 1, "lr": 0.1}), data, checkpoints=policy, resume=True
        )


def test_resume_on_another_number_of_training_images_is_refused(data, tmp_path):
    # The schedule counts the run's steps from the training images: resumed on half of them,
    # the epochs left trained at lr 0, past the schedule's end
    policy = CheckpointPolicy(tmp_path / "ckpt")
    config = TrainConfig(**{**SMALL, "epochs": 1})
    train(config, data, checkpoints=policy)
    fewer = data.cap_per_class(2)
    counts = f"{len(data.train)} training images, but the data holds {len(fewer.train)}"
    with pytest.raises(ConfigError, match=counts):
        train(config, fewer, checkpoints=policy, resume=True)


@pytest.mark.parametrize("says_its_device", [True, False], ids=["this version", "older"])
def test_a_checkpoint_of_another_kind_of_device_resumes_with_a_warning(
    data, tmp_path, caplog, says_its_device
):
    # A retry a CPU worker takes from a GPU worker's checkpoint: the GPU's batch generator state
    # (16 bytes of Philox) does not fit a CPU generator's (5056): a RuntimeError stopped it
    config = TrainConfig(**{**SMALL, "epochs": 2})

    def die_at_second(epoch, metrics):
        if epoch == 2:
            raise KeyboardInterrupt

    policy = CheckpointPolicy(tmp_path / "ckpt", every_epochs=1)
    with pytest.raises(KeyboardInterrupt):
        train(config, data, die_at_second, checkpoints=policy)
    state = torch.load(policy.path, weights_only=True)
    state["rng"]["batches"] = torch.zeros(16, dtype=torch.uint8)  # as a CUDA generator saves it
    if says_its_device:
        state["rng"]["batches_device"] = "cuda"
    torch.save(state, policy.path)
    resumed = train(config, data, checkpoints=CheckpointPolicy(tmp_path / "ckpt"), resume=True)
    assert resumed.resumed_from_epoch == 1 and [m.epoch for m in resumed.history] == [1, 2]
    assert "was written on another kind of device than cpu" in caplog.text


def test_huge_learning_rate_raises_the_non_finite_loss_error(data):
    config = TrainConfig(**{**SMALL, "optimizer": "sgd", "lr": 1e12, "momentum": 0.9})
    with pytest.raises(NonFiniteLossError, match="epoch 1"):
        train(config, data)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZER_SETTINGS))
def test_every_optimizer_takes_a_step_that_changes_the_weights(data, optimizer):
    config = TrainConfig(**{**SMALL, "optimizer": optimizer, "lr": 1e-2})
    torch.manual_seed(0)
    model = build_model(len(data.classes), torch.device("cpu"))
    before = [parameter.detach().clone() for parameter in model.parameters()]
    optim = build_optimizer(config, model.parameters())
    scheduler = build_scheduler(config, optim, steps_per_epoch=1)
    batches = train_batches(
        data.train,
        batch_size=16,
        image_size=32,
        min_scale=0.35,
        generator=torch.Generator().manual_seed(0),
    )
    first_batch = [next(iter(batches))]
    train_one_epoch(model, first_batch, optim, scheduler, epoch=1)
    changed = sum(not torch.equal(b, a) for b, a in zip(before, model.parameters()))
    assert changed == len(before)


def test_schedules_warm_up_then_follow_their_shape():
    assert lr_factor("constant", 0.9) == 1.0
    assert lr_factor("cosine", 0.0) == 1.0 and lr_factor("cosine", 1.0) == pytest.approx(0.0)
    assert lr_factor("flat_cosine", 0.7) == 1.0 and lr_factor("flat_cosine", 0.9) < 0.5
    assert lr_factor("onecycle", 0.0) == pytest.approx(1 / 25) and lr_factor(
        "onecycle", 0.3
    ) == pytest.approx(1.0)
    config = TrainConfig(epochs=2, warmup_epochs=1, schedule="constant", optimizer="sgd", lr=1.0)
    optim = build_optimizer(config, [torch.nn.Parameter(torch.zeros(1))])
    scheduler = build_scheduler(config, optim, steps_per_epoch=4)
    lrs = []
    for _ in range(8):
        lrs.append(scheduler.get_last_lr()[0])
        optim.step()
        scheduler.step()
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0])


@pytest.mark.xdist_group("torch-compile")  # under -n: one worker, one Inductor compile at a time
def test_compiled_runs_compile_once_per_process_and_match_eager_runs(data, tmp_path):
    """A worker's later trials reuse its first trial's compiled graphs and repeat it exactly; a
    compiled run trains as the eager one does and saves plain weights that load without it."""
    from torch._dynamo.utils import counters

    # The shapes of tests/run/test_search.py's `run --compile` (the same images, batch 32): on the
    # same xdist worker, whichever of the two runs second compiles nothing
    config = TrainConfig(**{**SMALL, "batch_size": 32, "epochs": 1})
    first = train(config, data, compile=True)
    graphs = counters["stats"]["unique_graphs"]
    second = train(config, data, compile=True, checkpoints=CheckpointPolicy(tmp_path))
    assert counters["stats"]["unique_graphs"] == graphs  # nothing was compiled again
    losses = [(metrics.train_loss, metrics.val_loss) for metrics in first.history]
    assert [(metrics.train_loss, metrics.val_loss) for metrics in second.history] == losses
    eager = train(config, data)
    # Inductor fuses and reorders float sums, and training carries the rounding on: equal within
    # 2% (seen: 0.7% after 4 steps), where an untrained network's loss is twice a trained one's
    for compiled, eager_metrics in zip(losses, eager.history, strict=True):
        assert compiled == pytest.approx((eager_metrics.train_loss, eager_metrics.val_loss), 0.02)
    weights = torch.load(tmp_path / "weights.pt", weights_only=True)["model"]
    plain = build_model(len(data.classes), torch.device("cpu"))
    plain.load_state_dict(weights)  # no "_orig_mod." prefixes: evaluate and export read these files


def test_a_policy_without_the_final_checkpoint_still_saves_the_final_weights(data, tmp_path):
    policy = CheckpointPolicy(tmp_path, every_epochs=1, at_end=False)
    train(TrainConfig(**SMALL), data, checkpoints=policy)
    # Epoch 2's was not written
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1
    assert (tmp_path / "weights.pt").exists()
    assert policy.writing_seconds > 0


@pytest.mark.parametrize("foreign", ["another trainer's", "a weights file"])
def test_a_last_pt_that_is_no_checkpoint_is_refused_naming_what_it_lacks(data, tmp_path, foreign):
    """last.pt is a common name: another trainer's file in the folder, or a weights.pt copied in
    its place, was a KeyError traceback (after the data was decoded), not one line."""
    config = TrainConfig(**{**SMALL, "epochs": 1})
    policy = CheckpointPolicy(tmp_path / "ckpt")
    policy.folder.mkdir()
    if foreign == "a weights file":
        train(config, data, checkpoints=CheckpointPolicy(tmp_path / "done"))
        (tmp_path / "done" / "weights.pt").rename(policy.path)
        lacks = "no optimizer, scheduler, rng, history"
    else:
        torch.save({"model": build_model(3, torch.device("cpu")).state_dict()}, policy.path)
        lacks = "no config, optimizer"
    before = policy.path.read_bytes()
    with pytest.raises(ConfigError, match=f"not a training checkpoint of hpsearch.*{lacks}"):
        resumable_classes(config, policy)  # what `hpsearch train --resume` asks before decoding
    with pytest.raises(ConfigError, match=f"not a training checkpoint of hpsearch.*{lacks}"):
        train(config, data, checkpoints=policy, resume=True)
    assert policy.path.read_bytes() == before  # someone else's file: left as it was
