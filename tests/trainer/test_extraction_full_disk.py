"""A disk that fills up while an archive is extracted is said to be full even where the kernel's
ENOSPC reaches us wrapped in another error (raised from it, or while handling it), as a tar reader
or a wrapper around it may: not taken for a damaged archive, whose fix is to fetch it again."""

from __future__ import annotations

import os
import tarfile

import pytest

from tests.trainer.test_sources import make_archive, resolve
from trainer.errors import DataError


def wrapping_writes(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """Each extracted file's write goes through a wrapper that turns its OSError into a TarError."""
    write = tarfile.TarFile.makefile

    def makefile(self, tarinfo, targetpath):
        try:
            write(self, tarinfo, targetpath)
        except OSError as error:
            if how == "cause":
                raise tarfile.TarError(f"cannot write {targetpath}") from error
            raise tarfile.TarError(f"cannot write {targetpath}")  # noqa: B904 (its context)

    monkeypatch.setattr(tarfile.TarFile, "makefile", makefile)


@pytest.mark.parametrize("how", ["cause", "context"])
def test_a_full_disk_behind_a_wrapped_error_is_said_to_be_full(
    tmp_path, small_disks, monkeypatch, how
):
    archive = make_archive(tmp_path / "mine" / "tiny.tar.gz", top="tiny")
    # Room for nothing much: the archive's 18 images take 4 kB each on a tmpfs
    root = small_disks.mount(tmp_path / "root", "32k")
    wrapping_writes(monkeypatch, how)
    with pytest.raises(DataError) as caught:
        resolve(str(archive), root)
    message = str(caught.value)
    assert message.startswith(f"no space left on {root} to extract {archive} ([Errno 28] ")
    assert "HPSEARCH_DATA_ROOT" in message and "\n" not in message
    assert os.listdir(root) == []
