"""Paths a command will write, checked before it works: each refusal names the path and what is in
the way, and a folder that does not exist yet is no refusal (it is made when the output is
written) and is not made by the check."""

from __future__ import annotations

import os

import pytest

from trainer.errors import ConfigError
from trainer.outputs import check_output_file, check_output_folder


def test_a_folder_where_a_file_goes_is_refused_with_a_file_name_to_use(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(ConfigError, match=f"-o {tmp_path}/out is a folder; name a file") as refused:
        check_output_file(tmp_path / "out", "-o", "report.html")
    assert f"{tmp_path}/out/report.html" in str(refused.value)


def test_a_file_where_a_folder_goes_is_refused(tmp_path):
    (tmp_path / "figures").write_text("")
    with pytest.raises(ConfigError, match="--png-dir .*/figures is a file, not a folder"):
        check_output_folder(tmp_path / "figures", "--png-dir")


@pytest.mark.parametrize("check", [check_output_file, check_output_folder])
def test_a_path_under_a_file_names_the_file(check, tmp_path):
    (tmp_path / "notes.txt").write_text("")
    args = ("-o", "r.html") if check is check_output_file else ("-o",)
    with pytest.raises(ConfigError, match=f"{tmp_path}/notes.txt is a file, not a folder"):
        check(tmp_path / "notes.txt" / "deeper" / "r.html", *args)


def test_folders_not_made_yet_pass_and_are_not_made(tmp_path):
    check_output_file(tmp_path / "new" / "deeper" / "r.html", "-o", "r.html")
    check_output_folder(tmp_path / "new" / "pngs", "--png-dir")
    check_output_file(tmp_path / "existing.html", "-o", "r.html")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: nothing to refuse")
def test_a_folder_that_cannot_be_written_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(ConfigError, match=f"folder {locked} is not writable"):
            check_output_file(locked / "new" / "r.html", "-o", "r.html")
        with pytest.raises(ConfigError, match="is not writable"):
            check_output_folder(locked, "--png-dir")
    finally:
        locked.chmod(0o755)
