"""A .tar.gz extracted so that no run ever reads half of one: into a hidden staging folder beside
its target, read to the end of its gzip stream (whose CRC is checked only there), then renamed into
place. A killed extraction leaves only its staging folder, which a later run removes."""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import os
import re
import shutil
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

# What a truncated, corrupted or not-gzip archive, or a disk too full for it, raises while extracted
EXTRACTION_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)
# tempfile.mkdtemp's staging name: `.TARGET.extracting-` and 8 random characters
_STAGING_NAME = re.compile(r"\..+\.extracting-[a-z0-9_]{8}")
# A staging folder's lock file, locked (flock) by its extractor until the folder is gone: a lock
# anyone can take means the extractor died. A lock, not a pid: a data root is shared by containers
# and, over NFS (where Linux takes flock's locks on the server), by machines, whose pids mean
# nothing here.
_LOCK_NAME = "lock"
# A staging folder without its lock file belongs to a process killed between making the two, or to
# one making them now: it is removed only once no live extractor could still be that slow.
UNLOCKED_STAGING_SECONDS = 10 * 60
_READ_BYTES = 1 << 20


def extract(archive: Path, target: Path, progress: bool, *, inner: str | None = None) -> None:
    """Extract the gzip tar `archive` into the new folder `target` (with `inner`: the archive's
    folder of that name). Raises one of EXTRACTION_ERRORS when the archive cannot be read to its
    end or the disk fills up; `target` then does not exist, nor any folder made for it."""
    made = [folder for folder in (target.parent, *target.parent.parents) if not folder.exists()]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _staging_folder(target) as staging:
            content = staging / "content"
            _unpack(archive, content, progress)
            _rename_unless_done(content / inner if inner else content, target)
    finally:
        for folder in made:  # a broken archive leaves no empty data root behind either
            with contextlib.suppress(OSError):  # not empty: the extraction succeeded
                folder.rmdir()


def _unpack(archive: Path, folder: Path, progress: bool) -> None:
    folder.mkdir()
    with gzip.open(archive) as stream, tarfile.open(fileobj=stream, mode="r:") as tar:
        members = tqdm(
            tar.getmembers(), desc=f"extracting {archive.name}", unit="file", disable=not progress
        )
        tar.extractall(folder, members=members, filter="data")
        # tarfile stops at the archive's end marker, short of the CRC at the end of the gzip
        # stream: without reading on, a corrupted archive would extract "successfully".
        while stream.read(_READ_BYTES):
            pass


def _rename_unless_done(extracted: Path, target: Path) -> None:
    try:
        os.rename(extracted, target)
    except OSError:
        if not target.is_dir():  # otherwise another process extracted the same archive first
            raise


@contextlib.contextmanager
def _staging_folder(target: Path) -> Iterator[Path]:
    """A new hidden folder beside `target`, locked while this process works in it, then removed."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.extracting-", dir=target.parent))
    try:
        with open(staging / _LOCK_NAME, "wb") as lock:
            # A filesystem without locks refuses every process alike: its staging folders are
            # never taken for abandoned, only left behind by a kill.
            with contextlib.suppress(OSError):
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            yield staging
            # While still locked, so no one else takes it for abandoned (on NFS the open lock file
            # stays as a .nfs* file until closed: the rmtree below finishes the job)
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_abandoned_staging(root: Path) -> list[Path]:
    """Delete the staging folders in `root` of extractions that were killed (SIGKILL, power loss),
    which no one else would; those of extractions still running are left alone."""
    try:
        names = os.listdir(root)
    except OSError:  # no data root yet (or none this process may read): nothing to clean
        return []
    removed = []
    for name in names:
        staging = root / name
        if _STAGING_NAME.fullmatch(name) and _is_abandoned(staging):
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(staging)
    return removed


def _is_abandoned(staging: Path) -> bool:
    try:
        lock = open(staging / _LOCK_NAME, "rb+")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return _seconds_since_modified(staging) > UNLOCKED_STAGING_SECONDS
    except OSError:  # not a staging folder of ours after all, or not ours to clean
        return False
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its extractor holds it (or this filesystem has no locks): keep it
            return False
        return True


def _seconds_since_modified(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:  # gone: its extraction finished
        return 0.0
