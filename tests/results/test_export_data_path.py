"""`hpsearch export` names the study's data so that `train --config` finds it from any folder: a
relative path becomes absolute, what is not a path (an Imagenette name, a URL) stays as recorded,
and an archive keeps the name that marks it one."""

from __future__ import annotations

import json
import tarfile

import optuna
import pytest

from search.cli import main
from search.studyfile.train_file import read_settings
from tests.helpers.made_trials import made_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def study_on(tmp_path, data: str) -> str:
    url = f"sqlite:///{tmp_path / 'made.db'}"
    made_study(url, "made", 1, epochs=1).set_user_attr("data_source", data)
    return url


def exported_data(capsys, url: str, path) -> tuple[str, str]:
    status = main(["export", "--storage", url, "--study", "made", "-o", str(path)])
    err = capsys.readouterr().err
    assert status == 0, err
    settings, _ = read_settings(path)
    return settings["data"], err


def test_a_relative_data_folder_is_exported_absolute_and_trains_from_another_folder(
    image_folder, cache_dir, tmp_path, capsys, monkeypatch
):
    url = study_on(tmp_path, "images")  # as typed in tmp_path, the folder the search ran in
    data, _ = exported_data(capsys, url, tmp_path / "best.toml")
    assert data == str(image_folder.resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    argv = ["train", "--config", str(tmp_path / "best.toml"), "--cache-dir", str(cache_dir)]
    status = main([*argv, "--device", "cpu", "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert json.loads(out.strip().splitlines()[-1])["data"] == str(image_folder.resolve())


def test_a_linked_archive_keeps_its_name(image_folder, tmp_path, capsys):
    blob = tmp_path / "blobs" / "sha256-1f2e"  # a content store's name, no .tar.gz
    blob.parent.mkdir()
    with tarfile.open(blob, "w:gz") as archive:
        archive.add(image_folder, arcname="images")
    (tmp_path / "images.tgz").symlink_to(blob)
    url = study_on(tmp_path, "images.tgz")
    assert exported_data(capsys, url, tmp_path / "best.json")[0] == str(tmp_path / "images.tgz")


@pytest.mark.parametrize("data", ["imagenette-160", "https://example.org/data.tar.gz"])
def test_what_is_not_a_path_is_exported_as_recorded(tmp_path, capsys, data):
    url = study_on(tmp_path, data)
    assert exported_data(capsys, url, tmp_path / "best.json")[0] == data


def test_a_home_relative_folder_is_expanded(image_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    url = study_on(tmp_path, "~/images")
    assert exported_data(capsys, url, tmp_path / "best.json")[0] == str(image_folder.resolve())


def test_a_relative_folder_not_found_here_is_kept_and_said(tmp_path, capsys):
    url = study_on(tmp_path, "data/imagenette")
    data, err = exported_data(capsys, url, tmp_path / "best.json")
    assert data == "data/imagenette"
    assert "'data/imagenette' is relative to the folder the search ran in" in err
    assert optuna.load_study(study_name="made", storage=url).user_attrs["data_source"] == data
