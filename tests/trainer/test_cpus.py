"""A process pinned to fewer CPUs than the machine has (SLURM, taskset, a cgroup cpuset) counts
the CPUs it may run on, and decodes with no more worker processes than those."""

from __future__ import annotations

import multiprocessing
import os

import pytest

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs a system with affinity masks and two CPUs to pin a process to one of",
)


def _usable_cpus_pinned() -> int:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from trainer.cpus import usable_cpus

    return usable_cpus()


def _decode_workers_pinned() -> int:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from trainer.decode import _decode_workers

    return _decode_workers(10_000)


def in_a_child(function):
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function)


def test_a_process_pinned_to_one_cpu_counts_one():
    from trainer.cpus import usable_cpus

    assert in_a_child(_usable_cpus_pinned) == 1
    assert usable_cpus() == len(os.sched_getaffinity(0))  # this process: not pinned to one


def test_decoding_on_one_cpu_starts_no_worker_processes():
    assert in_a_child(_decode_workers_pinned) == 0  # the main process decodes alone
