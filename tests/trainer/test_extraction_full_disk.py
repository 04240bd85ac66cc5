"""A disk that fills up while an archive is downloaded or extracted is said to be full, even where
the kernel's ENOSPC reaches us wrapped in another error (raised from it, or while handling it), as
a tar reader or a wrapper around it may: not taken for a damaged archive or a failed download, whose
fix is to fetch it again."""

from __future__ import annotations

import os
import tarfile

import pytest
import torchvision.datasets.utils

from tests.trainer.test_sources import make_archive, resolve, serving
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


def test_a_disk_too_full_to_download_imagenette_on_says_so_not_to_download_it_yourself(
    tmp_path, small_disks, monkeypatch
):
    """The download fills the disk (torchvision writes the archive into the data root): the fix is
    space, not a download by hand, which fills it as well."""
    served = make_archive(tmp_path / "served" / "imagenette2-160.tgz", top="imagenette2-160")
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", serving(served))
    root = small_disks.mount(tmp_path / "root", "16k")  # less than the 30 kB archive
    with pytest.raises(DataError) as caught:
        resolve("imagenette-160", root)
    message = str(caught.value)
    assert message.startswith(f"no space left on {root} to download imagenette-160 from ")
    assert "[Errno 28]" in message and "HPSEARCH_DATA_ROOT" in message
    assert "yourself" not in message and "\n" not in message
    assert os.listdir(root) == []  # the part written is of no use
