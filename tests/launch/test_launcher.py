"""How `hpsearch run` spreads workers over GPUs or CPU cores, and whether it starts the server it
forks them from before it imports torch (planning only: no GPU needed)."""

from __future__ import annotations

import itertools
import re

import pytest

from search.cli import flag_of
from search.errors import LaunchError
from search.launch import forking
from search.launch.local import _inherited, plan_workers
from trainer.naming import flags_named


def gpus_of(slots):
    return [slot.gpu for slot in slots]


def test_one_worker_per_gpu_by_default():
    assert gpus_of(plan_workers(None, None, 1, gpu_count=4, cpu_count=16)) == [0, 1, 2, 3]


def test_chosen_gpus_with_several_workers_each():
    slots = plan_workers(None, [0, 2], 2, gpu_count=4, cpu_count=16)
    assert gpus_of(slots) == [0, 2, 0, 2] and [slot.index for slot in slots] == [0, 1, 2, 3]
    assert all(slot.threads == 4 for slot in slots)


def test_a_total_is_spread_over_the_chosen_gpus():
    assert gpus_of(plan_workers(3, [1, 3], 1, gpu_count=4, cpu_count=16)) == [1, 3, 1]


@pytest.mark.parametrize(
    "visible, seen",
    [
        (None, ["0", "1"]),
        ("", ["0", "1"]),
        ("2,3", ["2", "3"]),  # a scheduler's share: torch's GPU 0 is the machine's GPU 2
        ("GPU-5f1e, MIG-77a0", ["GPU-5f1e", "MIG-77a0"]),  # UUIDs and MIG ids as given
    ],
)
def test_a_worker_sees_the_gpu_its_run_numbers_as_the_run_sees_it(visible, seen, monkeypatch):
    # Under CUDA_VISIBLE_DEVICES=2,3 the workers were given "0" and "1": another user's GPUs
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    slots = plan_workers(None, None, 1, gpu_count=2, cpu_count=16)
    given = [_inherited(slot).environment["CUDA_VISIBLE_DEVICES"] for slot in slots]
    assert given == seen


def test_cpu_workers_share_the_cores():
    slots = plan_workers(3, None, 1, gpu_count=0, cpu_count=8)
    assert gpus_of(slots) == [None, None, None] and [slot.threads for slot in slots] == [2, 2, 2]
    assert gpus_of(plan_workers(None, None, 1, gpu_count=0, cpu_count=2)) == [None]


@pytest.mark.parametrize(
    "workers, gpus, per_gpu, gpu_count, by_keyword, by_flag",
    [
        (0, None, 1, 0, "workers must be at least 1, but got 0", "--workers must be"),
        (None, None, 0, 2, "workers_per_gpu must be at least 1, but got 0", "--workers-per-gpu"),
        # past any machine: a slot each would be planned, then a process each started
        (257, None, 1, 0, "workers must be at most 256, but got 257", "--workers must be at most"),
        (None, None, 1000, 2, "workers_per_gpu must be at most 256", "--workers-per-gpu must"),
        (None, [0, 5], 1, 2, "gpus names GPU(s) [5] but this machine has 2", "--gpus names"),
        (None, [0], 1, 0, "leave gpus out to use the CPU", "leave --gpus out"),
        # an empty list had trained one worker on the CPU of a machine with GPUs
        (None, [], 1, 2, "gpus is empty, which would leave every GPU idle", "--gpus is empty"),
        (
            None,
            [1, 0, 1],
            1,
            2,
            "gpus names GPU 1 twice; for several workers on each GPU, give workers_per_gpu",
            "give --workers-per-gpu",
        ),
    ],
)
def test_workers_that_do_not_fit_the_machine_are_refused_by_keyword_or_flag(
    workers, gpus, per_gpu, gpu_count, by_keyword, by_flag
):
    """run_study names its keywords, `hpsearch run` (search.cli.main) its flags."""
    with pytest.raises(LaunchError, match=re.escape(by_keyword)):
        plan_workers(workers, gpus, per_gpu, gpu_count=gpu_count, cpu_count=2)
    with flags_named(flag_of), pytest.raises(LaunchError, match=re.escape(by_flag)):
        plan_workers(workers, gpus, per_gpu, gpu_count=gpu_count, cpu_count=2)


@pytest.mark.parametrize(
    "workers, gpus, device, gpu_present",
    list(itertools.product((None, 1, 2), (None, [0]), ("auto", "cuda", "cpu"), (False, True))),
)
def test_the_guess_that_starts_the_worker_server_before_torch_agrees_with_the_plan(
    workers, gpus, device, gpu_present, tmp_path, monkeypatch
):
    """The guess made before torch is imported (a GPU seen through NVIDIA's driver) agrees with
    the plan made with it, wherever that plan is not refused."""
    driver = tmp_path / "nvidia-gpus"
    driver.mkdir()
    if gpu_present:
        (driver / "0000:01:00.0").mkdir()
    monkeypatch.setattr(forking, "NVIDIA_GPUS", str(driver))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpu_count = 1 if gpu_present and device != "cpu" else 0  # as launch: torch.cuda's count
    try:
        slots = plan_workers(workers, gpus, 1, gpu_count=gpu_count, cpu_count=2)
    except LaunchError:
        return  # refused before a worker would start (--gpus on a machine without one)
    forks = len(slots) > 1 or slots[0].gpu is not None
    assert forking.will_fork_workers(workers, device) == forks
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # every GPU hidden: one CPU worker, unforked
    assert forking.will_fork_workers(workers, device) == (workers == 2)
