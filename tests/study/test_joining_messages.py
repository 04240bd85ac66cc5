"""What a worker that cannot join a shared study is told names what the user gave: the storage it
looked in, and the study file's data source when that, not --data, named the images."""

from __future__ import annotations

from tests.helpers.cli import run_cli
from tests.helpers.images import make_image_folder
from tests.helpers.studies import write_study


def test_a_study_not_started_names_the_storage_to_start_it_in(
    tmp_path, image_folder, pg_url, capsys
):
    another = write_study(tmp_path, image_folder, name="another")
    assert run_cli(capsys, "run", another, "--storage", pg_url, "--create-only")[0] == 0
    path = write_study(tmp_path, image_folder)
    status, _, err = run_cli(capsys, "worker", path, "--storage", pg_url)
    [line] = err.strip().splitlines()
    # `hpsearch run FILE` alone would start it in the default SQLite file, which this worker
    # never reads
    assert status == 2 and f"`hpsearch run {path}` with the same --storage" in line, line


def test_other_data_from_the_study_file_names_the_study_files_data_source(
    tmp_path, image_folder, cache_dir, pg_url, capsys
):
    created = write_study(tmp_path, image_folder)
    status, _, _ = run_cli(capsys, "run", created, "--storage", pg_url, "--create-only")
    assert status == 0
    other_images = make_image_folder(tmp_path / "other", classes=2, train_per_class=5)
    (tmp_path / "elsewhere").mkdir()
    joining = write_study(tmp_path / "elsewhere", other_images)  # the same study, other images
    status, _, err = run_cli(
        capsys, "worker", joining, "--storage", pg_url, "--cache-dir", cache_dir, "--device", "cpu"
    )
    [line] = err.strip().splitlines()
    assert status == 2 and "data differs" in line and "the study file's data.source" in line
