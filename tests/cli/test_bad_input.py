"""Every bad input a user can give, through the real command line in a fresh folder: exit 2, one
line (two at most) on standard error, no traceback, no secret shown, and no file written anywhere.

Each row names the command line (with {placeholders} for what `_inputs` made), a text the error
must hold, and how the row runs: in-process through `search.cli.main` (fast), or as a subprocess
(`python -m search`), which proves no traceback reaches a user. Keep adding rows.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import optuna
import pytest

from search.cli import main
from tests.helpers import postgres
from tests.helpers.images import make_image
from tests.helpers.studies import write_study

SECRET = "Sup3rSecret-42"
# Files SQLite keeps beside an open database it did not create; they go when it closes
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class Row(NamedTuple):
    argv: str  # split on spaces after the placeholders are filled in
    expect: str  # in the error line
    subprocess: bool = False
    env: dict[str, str] | None = None
    postgres: bool = False  # reaches the test PostgreSQL (tests/helpers/postgres.py)


def _tiny_images(root: Path, *, splits=("train", "val"), classes: int = 2) -> Path:
    """2 classes, 2 train and 1 val image each, 16 px: enough to be a data set, quick to decode."""
    rng = random.Random(0)
    for split in splits:
        for label in range(classes):
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True)
            for index in range(2 if split == "train" else 1):
                make_image(label, rng, (16, 16)).save(folder / f"img_{index}.jpg")
    return root


def _inputs(root: Path) -> dict[str, Path]:
    """Everything the rows read, made before the folder is listed."""
    data = _tiny_images(root / "data")
    loop = _tiny_images(root / "loop")
    os.symlink("b.jpg", loop / "train/class_0/a.jpg")
    os.symlink("a.jpg", loop / "train/class_0/b.jpg")
    class_loop = _tiny_images(root / "class-loop")
    os.symlink("class_9", class_loop / "val/class_9")
    dangling = _tiny_images(root / "dangling")
    os.symlink("gone.jpg", dangling / "val/class_1/img_9.jpg")
    empty_image = _tiny_images(root / "empty-image")
    (empty_image / "train/class_1/img_9.jpg").write_bytes(b"")
    corrupt_image = _tiny_images(root / "corrupt-image")
    (corrupt_image / "val/class_0/img_9.jpg").write_bytes(b"\xff\xd8 not a JPEG after all")
    (root / "broken.tar.gz").write_bytes(b"\x1f\x8b\x08 not really gzip")
    (root / "latin1.toml").write_bytes("optimizer = 'sgd' # caf\xe9\n".encode("latin-1"))
    (root / "broken.yaml").write_text("optimizer: [sgd\nlr: 0.1\n")
    study = write_study(root, data, name="typo").read_text()
    (root / "unknown-key.toml").write_text(study.replace("batch_size", "batchsize"))
    existing = root / "existing.db"
    optuna.create_study(study_name="other", storage=f"sqlite:///{existing}")
    return {
        "data": data,
        "no_val": _tiny_images(root / "no-val", splits=("train",)),
        "loop": loop,
        "class_loop": class_loop,
        "dangling": dangling,
        "empty_image": empty_image,
        "corrupt_image": corrupt_image,
        "broken_tar": root / "broken.tar.gz",
        "study": write_study(root, data),
        "study_no_val": write_study(root, root / "no-val", name="no-val"),
        "unknown_key": root / "unknown-key.toml",
        "latin1": root / "latin1.toml",
        "broken_yaml": root / "broken.yaml",
        "existing": existing,
        **_storage_inputs(root),
        **_number_inputs(root),
        **_file_inputs(root),
    }


# Round two (issue 30): each area makes its own inputs and keeps its own rows below.


def _storage_inputs(root: Path) -> dict[str, Path]:
    """Storage URLs, flags that reach a storage, and storages that cannot be read or written."""
    study = (root / "test-study.toml").read_text()  # _inputs wrote it first
    in_memory = root / "in-memory.toml"
    in_memory.write_text(study.replace("[study]\n", '[study]\nstorage = "sqlite:///:memory:"\n'))
    return {"study_in_memory": in_memory}


def _number_inputs(root: Path) -> dict[str, Path]:
    """Numbers out of range in study files, flags and data sets."""
    return {}


def _file_inputs(root: Path) -> dict[str, Path]:
    """Weights files, output paths and images that are not what they claim."""
    return {}


PG = "postgresql+psycopg://root@127.0.0.1"
TRAIN = "train --device cpu --image-size 16 --epochs 1 --batch-size 2"
ROWS = {
    # A storage URL is checked (syntax, port, driver) before anything connects or is written
    "mysql driver missing": Row(
        "run {study} --device cpu --storage mysql://root@127.0.0.1/db", "pip install mysqlclient"
    ),
    "mysql driver missing (subprocess)": Row(
        "status --storage mysql+pymysql://root@127.0.0.1/db", "pip install PyMySQL", True
    ),
    "port not a number": Row(f"status --storage {PG}:five/db", "port"),
    "port out of range": Row(f"run {{study}} --storage {PG}:70000/db", "1 to 65535"),
    "unknown driver": Row(
        "run {study} --storage postgresql+psycopg4://root@127.0.0.1/db", "supported drivers"
    ),
    "not a URL": Row("report --study x -o r.html --storage nonsense", "malformed storage URL"),
    "SQLite folder missing": Row("run {study} --storage sqlite:///nowhere/x.db", "nowhere"),
    "grpc-proxy unknown driver": Row("grpc-proxy --storage redis://h/0", "supported drivers"),
    # Commands that only read refuse a SQLite file that does not exist, creating nothing
    "status typo.db": Row("status --storage sqlite:///typo.db", "typo.db does not exist"),
    "report typo.db": Row("report --study s -o r.html --storage sqlite:///typo.db", "typo.db"),
    "export typo.db": Row("export --study s --storage sqlite:///typo.db", "typo.db does not"),
    "dashboard typo.db": Row("dashboard --storage sqlite:///typo.db", "typo.db does not exist"),
    "typo.db from the environment": Row(
        "status", "typo.db does not exist", env={"HPSEARCH_STORAGE": "sqlite:///typo.db"}
    ),
    "report on a study not there": Row(
        "report --study nope -o r.html --storage sqlite:///{existing}", "nope"
    ),
    # Secrets: in the user-info or a query parameter, never printed
    "password in a query parameter": Row(
        f"run {{study}} --storage {PG}:1/db?password={SECRET}", "cannot reach storage"
    ),
    "password in a query parameter (subprocess)": Row(
        f"export --study s --storage {PG}:1/db?sslmode=disable&password={SECRET}",
        "cannot reach storage",
        True,
    ),
    "token in a query parameter, port not a number": Row(
        f"status --storage {PG}:five/db?api_token={SECRET}", "port"
    ),
    "password in the user-info, from the environment": Row(
        "status",
        "cannot reach storage",
        env={"HPSEARCH_STORAGE": f"postgresql+psycopg://root:{SECRET}@127.0.0.1:1/db"},
    ),
    "database not there, password in a query parameter": Row(
        f"status --storage {postgres.storage_url('hpsearch_no_such_db')}?password={SECRET}",
        "does not exist",
        postgres=True,
    ),
    # Study files and flags: checked before the data or a database is touched
    "study file missing": Row("run nowhere.toml", "nowhere.toml"),
    "study file with an unknown key": Row("run {unknown_key}", "batchsize"),
    "study file not UTF-8": Row("run {latin1}", "UTF-8"),
    "GPU that does not exist": Row("run {study} --device cuda:7", "cuda:7"),
    "export --top 0": Row("export --study s --top 0", "--top must be at least 1"),
    "export to an unknown format": Row("export --study s -o best.txt", "best.txt"),
    "trials to a file that is not CSV": Row("trials --study s -o trials.xlsx", "name a .csv file"),
    # Data folders: the layout, classes and files, before anything is decoded or cached
    "symlink loop in a class folder": Row(f"{TRAIN} --data {{loop}}", "symlink loop"),
    "symlink loop in a class folder (subprocess)": Row(
        f"{TRAIN} --data {{loop}}", "class_0/b.jpg", True
    ),
    "class folder that is a symlink loop": Row(f"{TRAIN} --data {{class_loop}}", "class_9"),
    "image that is a broken link": Row(f"{TRAIN} --data {{dangling}}", "img_9.jpg"),
    "zero-byte image": Row(f"{TRAIN} --data {{empty_image}}", "img_9.jpg is empty"),
    # Found only by decoding: the progress bar is the one line before the error
    "corrupt image": Row(f"{TRAIN} --data {{corrupt_image}}", "img_9.jpg"),
    "no val/": Row(f"{TRAIN} --data {{no_val}}", "no val/ folder"),
    "data folder missing": Row(f"{TRAIN} --data nowhere", "nowhere does not exist"),
    "broken .tar.gz": Row(f"{TRAIN} --data {{broken_tar}}", "broken.tar.gz"),
    # train's own settings
    "--checkpoint-every 0": Row(
        f"{TRAIN} --data {{data}} --checkpoint-dir ck --checkpoint-every 0", "at least 1 epoch"
    ),
    "--config not UTF-8": Row(f"{TRAIN} --data {{data}} --config {{latin1}}", "not UTF-8"),
    "--config broken YAML": Row(f"{TRAIN} --data {{data}} --config {{broken_yaml}}", "YAML"),
    "eps for sgd": Row(f"{TRAIN} --data {{data}} --optimizer sgd --eps 1e-6", "does not apply"),
    "--resume without a folder": Row(f"{TRAIN} --data {{data}} --resume", "--checkpoint-dir"),
    "evaluate weights that are not there": Row(
        "evaluate nothing.pt --data {data} --device cpu", "nothing.pt"
    ),
    # run and worker check the data and the study before they write
    "run with no val/ writes no hpsearch.db": Row("run {study_no_val} --device cpu", "val/"),
    "worker on a study not there decodes nothing": Row(
        "worker {study} --device cpu --storage sqlite:///{existing}", "test-study"
    ),
    "worker typo.db": Row("worker {study} --storage sqlite:///typo.db", "typo.db does not exist"),
    "worker --study typo.db": Row("worker --study s --storage sqlite:///typo.db", "typo.db"),
    # Which study: a file, or the name of one the storage holds
    "worker with no study": Row("worker --device cpu", "not neither"),
    "run with a file and --study": Row("run {study} --study test-study", "not both"),
    "worker --study not there": Row(
        "worker --study nope --storage sqlite:///{existing}", "no study named 'nope'"
    ),
    "worker --study of a study with no stored settings": Row(
        "worker --study other --storage sqlite:///{existing}", "recorded their settings"
    ),
    "run --study with --epochs": Row(
        "run --study other --epochs 2 --storage sqlite:///{existing}", "--epochs with --study"
    ),
}
# Rows that argparse refuses run as subprocesses: it ends an in-process `main` with SystemExit
STORAGE_ROWS: dict[str, Row] = {
    # Round two: storage URLs, flags that reach a storage, storages that cannot be read or written
    # An @ left in a password: SQLAlchemy would read "{SECRET}@127.0.0.1" as the host
    "password holding an @": Row(
        f"status --storage postgresql+psycopg://root:Sup3r@{SECRET}@127.0.0.1:1/db", "as %40"
    ),
    "password holding an @ (subprocess)": Row(
        f"run {{study}} --device cpu --storage postgresql+psycopg://root:Sup3r@{SECRET}@127.0.0.1:1/db",
        "root:***@127.0.0.1:1/db",
        True,
    ),
    "password holding an @, from the environment": Row(
        "worker --study s",
        "ambiguous",
        env={"HPSEARCH_STORAGE": f"postgresql+psycopg://root:Sup3r@{SECRET}@127.0.0.1:1/db"},
    ),
    # ... and in a query value: SQLAlchemy would take "1/db?password=Sup3r" for the password
    "query password holding an @": Row(
        f"export --study s --storage {PG}:1/db?password=Sup3r@{SECRET}", "ambiguous"
    ),
    # Two slashes: SQLAlchemy reads rel.db as a host, SQLite opens a database in memory
    "sqlite://rel.db": Row(
        "run {study} --device cpu --storage sqlite://rel.db", "sqlite:///rel.db"
    ),
    "sqlite://rel.db for status": Row("status --storage sqlite://rel.db", "three slashes"),
    # In memory: gone when the command ends, and each worker process would have its own
    "in memory with two workers (subprocess)": Row(
        "run {study} --device cpu --workers 2 --storage sqlite:///:memory:", "in-memory", True
    ),
    "in memory from the study file": Row("run {study_in_memory} --device cpu", "in-memory"),
    "in memory, plain sqlite://": Row("worker {study} --storage sqlite://", "in-memory"),
    "in memory for status": Row("status --storage sqlite:///:memory:", "in-memory"),
    "in memory for grpc-proxy": Row("grpc-proxy --storage sqlite://", "in-memory"),
    # A gRPC proxy that does not answer, named as a database server that does not
    "gRPC proxy not there (subprocess)": Row(
        "status --storage grpc://127.0.0.1:1", "cannot reach storage grpc://127.0.0.1:1", True
    ),
    "run on a gRPC proxy not there decodes nothing": Row(
        "run {study} --device cpu --storage grpc://127.0.0.1:1", "no gRPC proxy answered"
    ),
    # An empty --storage (an unset shell variable) would use ./hpsearch.db without a word
    "--storage '' (subprocess)": Row("status --storage ", "--storage: is empty", True),
    "run --storage '' (subprocess)": Row("run {study} --storage ", "--storage: is empty", True),
    "--wait-for-storage -1 (subprocess)": Row(
        "run {study} --wait-for-storage -1", "--wait-for-storage: expected seconds", True
    ),
    "--wait-for-storage nan (subprocess)": Row(
        "worker --study s --wait-for-storage nan", "but got 'nan'", True
    ),
    "--wait-for-storage inf (subprocess)": Row(
        "worker {study} --wait-for-storage inf", "a finite number", True
    ),
    "dashboard --port 70000 (subprocess)": Row(
        "dashboard --storage sqlite:///{existing} --port 70000", "1 to 65535, but got '70000'", True
    ),
    "grpc-proxy --port 70000 (subprocess)": Row(
        "grpc-proxy --port 70000", "1 to 65535, but got '70000'", True
    ),
    "grpc-proxy --port 0 (subprocess)": Row("grpc-proxy --port 0", "but got '0'", True),
}
NUMBER_ROWS: dict[str, Row] = {
    # Round two: numbers out of range in study files, flags and data sets
}
FILE_ROWS: dict[str, Row] = {
    # Round two: weights files, output paths and images that are not what they claim
}
ROWS.update(STORAGE_ROWS)
ROWS.update(NUMBER_ROWS)
ROWS.update(FILE_ROWS)
CASES = [
    pytest.param(row, id=name, marks=[pytest.mark.postgres] if row.postgres else [])
    for name, row in ROWS.items()
]


def _listing(root: Path) -> set[str]:
    paths = {str(path.relative_to(root)) for path in root.rglob("*")}
    return {path for path in paths if not path.endswith(SQLITE_SIDE_FILES)}


def _run(row: Row, argv: list[str], capsys) -> tuple[int, str, str]:
    if row.subprocess:
        done = subprocess.run(
            [sys.executable, "-m", "search", *argv],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        )
        return done.returncode, done.stdout, done.stderr
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("row", CASES)
def test_a_bad_input_is_one_line_exit_2_and_writes_nothing(row, tmp_path, monkeypatch, capsys):
    inputs = _inputs(tmp_path / "inputs")
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    for name, value in (row.env or {}).items():
        monkeypatch.setenv(name, value)
    before = _listing(tmp_path)

    status, out, err = _run(row, row.argv.format(**inputs).split(" "), capsys)

    assert "Traceback" not in out + err
    assert SECRET not in out + err
    lines = err.strip().split("\n")  # a progress bar redrawn with \r is one line
    assert status == 2, err
    assert len(lines) <= 2 and lines[-1].startswith("hpsearch: error: "), err
    assert row.expect in err
    assert _listing(tmp_path) == before
