"""Atomic writes (checkpoints, the image cache): what a killed writer leaves is cleaned up by the
next write to the folder, and what a live writer is writing is not touched."""

from __future__ import annotations

import errno
import os
import subprocess
import tempfile
import time

import pytest

from trainer.checkpoint import CheckpointPolicy, write_atomically
from trainer.errors import NoSpaceLeft
from trainer.whole_files import ABANDONED_TEMPORARY_SECONDS


def _left_by_a_writer(folder, target: str, *, age_seconds: float):
    # The name write_atomically's mkstemp gives, as a SIGKILL mid-write leaves it
    handle, name = tempfile.mkstemp(dir=folder, prefix=f".{target}.", suffix=".tmp")
    os.write(handle, b"half a checkpoint")
    os.close(handle)
    then = time.time() - age_seconds
    os.utime(name, (then, then))
    return os.path.basename(name)


def test_the_next_write_removes_what_killed_writers_left_and_keeps_live_ones(tmp_path):
    abandoned = [
        _left_by_a_writer(tmp_path, "last.pt", age_seconds=ABANDONED_TEMPORARY_SECONDS + 60),
        _left_by_a_writer(tmp_path, "weights.pt", age_seconds=2 * ABANDONED_TEMPORARY_SECONDS),
    ]
    live = _left_by_a_writer(tmp_path, "last.pt", age_seconds=5)  # another worker, writing now
    theirs = tmp_path / ".notes.tmp"  # not a name write_atomically makes
    theirs.write_text("a user's file")
    os.utime(theirs, (0, 0))

    write_atomically(tmp_path / "last.pt", lambda file: file.write(b"complete"))

    assert (tmp_path / "last.pt").read_bytes() == b"complete"
    left = set(os.listdir(tmp_path))
    assert not left & set(abandoned)
    assert left == {"last.pt", live, ".notes.tmp"}


def test_a_write_that_fails_leaves_no_temporary_file(tmp_path):
    def fails(file):
        file.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(tmp_path / "last.pt", fails)
    assert os.listdir(tmp_path) == []


def test_a_written_file_has_the_mode_the_umask_gives_as_any_file_written_here(tmp_path):
    # mkstemp's 0o600 kept a team sharing a checkpoint or cache folder out of each other's files
    previous = os.umask(0o022)
    try:
        write_atomically(tmp_path / "weights.pt", lambda file: file.write(b"complete"))
    finally:
        os.umask(previous)
    assert (tmp_path / "weights.pt").stat().st_mode & 0o777 == 0o644


class _OverQuota:
    """What a payload meets when its user's disk quota is spent: the OSError the kernel gives."""

    def __reduce__(self):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))


def test_a_read_only_or_over_quota_disk_stops_a_write_as_a_full_disk_does(tmp_path, small_disks):
    """A disk remounted read-only (EROFS) or a quota spent (EDQUOT) is the disk's fault as a full
    one is: NoSpaceLeft, on which a search's worker queues its trials and stops with one line,
    where it recorded a bug on the trial and crashed; the line says which it was.

    EROFS is real here: a tmpfs remounted read-only after the trial's checkpoints were set up, as a
    file system remounts itself on an error. EDQUOT cannot be caused here without quota tools: an
    OSError with that errno, met where the kernel's would be (in torch's writer), takes the same
    path, which reads the errno alone."""
    disk = small_disks.mount(tmp_path / "disk", "1m")
    policy = CheckpointPolicy(disk / "trial-0")  # checked while the disk was writable
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    with pytest.raises(NoSpaceLeft) as read_only:
        policy.write({"epoch": 1}, policy.path)
    assert (
        str(read_only.value) == f"read-only file system at {disk / 'trial-0'}: cannot write last.pt"
    )

    policy = CheckpointPolicy(tmp_path / "trial-1")
    with pytest.raises(NoSpaceLeft) as over_quota:
        policy.write({"epoch": 1, "state": _OverQuota()}, policy.path)
    assert (
        str(over_quota.value) == f"disk quota exceeded on {tmp_path / 'trial-1'} to write last.pt"
    )
