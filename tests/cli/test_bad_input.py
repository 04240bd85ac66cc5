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

import numpy as np
import optuna
import pytest
import torch
import torchvision
from PIL import Image

from search.cli import main
from tests.helpers import postgres
from tests.helpers.cli import listing
from tests.helpers.images import make_image
from tests.helpers.studies import write_study
from trainer.checkpoint import save_atomically
from trainer.config import TrainConfig
from trainer.files import CHECKPOINT_NAME

SECRET = "Sup3rSecret-42"


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
    secrets = {}
    for name, url in SECRET_STORAGES.items():
        secrets[name] = root / f"{name.replace('_', '-')}.toml"
        secrets[name].write_text(study.replace("[study]\n", f'[study]\nstorage = "{url}"\n'))
    return {"study_in_memory": in_memory, **secrets}


# Study files whose storage holds a secret everyone who reads the file would see: name -> URL
SECRET_STORAGES = {
    "study_sslpassword": f"postgresql://u@127.0.0.1/test?sslpassword={SECRET}",
    "study_api_key": f"postgresql://u@127.0.0.1/test?sslmode=require&api_key={SECRET}",
    "study_token": f"postgresql+psycopg://u@127.0.0.1:1/test?token={SECRET}",
    "study_password_at": f"postgresql://u:Sup3r@{SECRET}@127.0.0.1/test",
}


def _number_inputs(root: Path) -> dict[str, Path]:
    """Numbers out of range in study files, flags and data sets."""
    data = root / "data"  # made by _inputs first
    one_image = _tiny_images(root / "one-image", classes=1)
    (one_image / "train/class_0/img_1.jpg").unlink()
    (root / "inf-lr.yaml").write_text("lr: .inf\n")
    (root / "half-epoch.json").write_text('{"epochs": 1.5}\n')
    (root / "a-file").write_text("not a folder\n")
    return {
        "one_class": _tiny_images(root / "one-class", classes=1),
        "one_image": one_image,
        "inf_lr": root / "inf-lr.yaml",
        "half_epoch": root / "half-epoch.json",
        "a_file": root / "a-file",
        # What `train` with TRAIN's flags would have checkpointed, but for one setting or the data
        "other_model_run": _checkpoint(root / "other-model", model="resnet34"),
        "other_classes_run": _checkpoint(root / "other-classes", classes=("a", "b", "c")),
        **{
            name: _study_with(root, data, name, before, after)
            for name, (before, after) in NUMBER_STUDIES.items()
        },
    }


# A study file with one line of write_study's changed: name -> (line, replacement)
NUMBER_STUDIES = {
    "huge_image": ("image_size = 32", "image_size = 100000"),
    "huge_lr": ("lr = { low = 1e-3, high = 0.1 }", "lr = { low = 1e-4, high = 1e300 }"),
    "huge_eps": ("eps = { low = 1e-8, high = 1e-6 }", "eps = { low = 1e-8, high = 2.0 }"),
    "huge_seed": ("seed = 7", "seed = 1180591620717411303424"),
    "huge_heartbeat": ("interval_seconds = 2", "interval_seconds = 1000000000000"),
    "huge_grace": ("grace_seconds = 8", "grace_seconds = 100000000000000"),
    "batch_of_one": ("batch_size = 32", "batch_size = 1"),
    "large_holdout": ("image_size = 32", "image_size = 32\nvalidation_fraction = 0.99"),
    "capped_holdout": (
        "image_size = 32",
        "image_size = 32\nvalidation_fraction = 0.5\nper_class = 1",
    ),
    "huge_trials": ("trials = 4", f"trials = {10**30}"),
    "huge_epochs": ("epochs = 2", f"epochs = {10**19}"),
    "huge_timeout": ("seed = 7", "seed = 7\ntimeout_minutes = 1e300"),
    "huge_fusion": ("seed = 7", f"seed = 7\ntrials_per_worker = {10**12}"),
}


def _study_with(root: Path, data: Path, name: str, line: str, replacement: str) -> Path:
    text = write_study(root, data, name=name.replace("_", "-")).read_text()
    assert line in text, line  # a change to write_study must not leave a row testing nothing
    path = root / f"{name.replace('_', '-')}.toml"
    path.write_text(text.replace(line, replacement))
    return path


def _checkpoint(folder: Path, *, classes=("class_0", "class_1"), **settings) -> Path:
    """A checkpoint folder as `train` leaves it: its last.pt records the settings and classes
    (the states are there, empty: resuming compares the settings and classes before it loads them,
    once it has seen a checkpoint's every part, trainer.loop.CHECKPOINT_KEYS)."""
    config = TrainConfig(image_size=16, epochs=1, batch_size=2, **settings)
    states = {part: {} for part in ("model", "optimizer", "scheduler", "rng")}
    payload = {
        "epoch": 1,
        "config": config.to_dict(),
        "classes": list(classes),
        "history": [],
        **states,
    }
    save_atomically(payload, folder / CHECKPOINT_NAME)
    return folder


def _file_inputs(root: Path) -> dict[str, Path]:
    """Weights files, output paths and images that are not what they claim."""
    files = root / "files"
    files.mkdir()
    fields = {"architecture": "resnet18", "classes": ["class_0", "class_1"], "image_size": 16}
    weights = {
        "five_classes": {**fields, "classes": [f"class_{n}" for n in range(5)], "model": _state(5)},
        "size_big": {**fields, "image_size": "big", "model": {}},
        "model_none": {**fields, "model": None},
        "model_tensor": {**fields, "model": torch.zeros(3)},
        "classes_str": {**fields, "classes": "class_0", "model": {}},
        "empty_model": {**fields, "model": {}},
        "plain_tensor": torch.zeros(3),
        "plain_list": [1, 2, 3],
    }
    for name, payload in weights.items():
        torch.save(payload, files / f"{name}.pt")
    whole = (files / "five_classes.pt").read_bytes()
    (files / "truncated.pt").write_bytes(whole[: len(whole) // 2])
    (files / "text.pt").write_text("not torch at all\n")
    for folder in ("out.html", "out.csv", "best.toml", "best2.weights.pt"):
        (files / folder).mkdir()
    (files / "a-file").write_text("a file where a folder should be\n")
    float_image = _tiny_images(root / "float-image")
    Image.fromarray(np.zeros((16, 16), np.float32)).save(float_image / "val/class_1/f.png", "TIFF")
    return {
        **{f"w_{name}": files / f"{name}.pt" for name in (*weights, "truncated", "text")},
        "files": files,
        "a_file": files / "a-file",
        "float_image": float_image,
    }


def _state(classes: int) -> dict[str, object]:
    """A ResNet-18's state of the right shapes in a few kB: every tensor a view of one zero."""
    with torch.device("meta"):
        network = torchvision.models.resnet18(num_classes=classes)
    return {
        key: torch.zeros((), dtype=value.dtype).expand(value.shape)
        for key, value in network.state_dict().items()
    }


def _evaluate(weights: str) -> str:
    """`evaluate` of one of _file_inputs' weights files on the tiny data set."""
    return f"evaluate {{w_{weights}}} --data {{data}} --device cpu"


PG = "postgresql+psycopg://root@127.0.0.1"
TRAIN = "train --device cpu --image-size 16 --epochs 1 --batch-size 2"
ROWS = {
    # A storage URL is checked (syntax, port, driver) before anything connects or is written
    "mysql driver missing": Row(
        "run {study} --device cpu --storage mysql://root@127.0.0.1/db", "pip install mysqlclient"
    ),
    "mysqlclient driver missing (subprocess)": Row(
        "status --storage mysql+mysqldb://root@127.0.0.1/db", "pip install mysqlclient", True
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
        "the server has no database 'hpsearch_no_such_db'",
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
    # a.jpg and b.jpg lead to each other: the one named is the one the file system lists first
    "symlink loop in a class folder (subprocess)": Row(
        f"{TRAIN} --data {{loop}}", "class_0/", True
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
        "worker {study} --device cpu --storage sqlite:///{existing}",
        "study 'test-study' does not exist in storage sqlite:///{existing}; start it there first",
    ),
    "worker typo.db": Row("worker {study} --storage sqlite:///typo.db", "typo.db does not exist"),
    "worker --study typo.db": Row("worker --study s --storage sqlite:///typo.db", "typo.db"),
    # Which study: a file, or the name of one the storage holds
    "worker with no study": Row("worker --device cpu", "not neither"),
    "run with a file and --study": Row("run {study} --study test-study", "not both"),
    "worker --study not there": Row(
        # the storage named: an environment variable or the default may have chosen it
        "worker --study nope --storage sqlite:///{existing}",
        "no study named 'nope' in storage sqlite:///{existing}; it holds: ",
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
    # A study file's storage holds no secret of any kind, named by its kind, never its value
    "study storage with sslpassword": Row(
        "run {study_sslpassword} --device cpu", "must not hold a secret (query parameter 'sslpass"
    ),
    "study storage with api_key": Row(
        "worker {study_api_key} --device cpu", "study.storage must not hold a secret (query param"
    ),
    "study storage with token (subprocess)": Row(
        "run {study_token} --device cpu", "(query parameter 'token'), which a study file", True
    ),
    "study storage with a password holding an @": Row(
        "run {study_password_at} --device cpu", "study.storage must not hold a secret (a password)"
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
    # Image sizes: a cache of N x 3 x S x S bytes; 100000 px would ask for hundreds of GB
    "train --image-size 100000": Row(f"{TRAIN} --data {{data}} --image-size 100000", "1024 px"),
    "study image_size 100000": Row(
        "run {huge_image} --device cpu", "huge-image.toml: data.image_size"
    ),
    "run --image-size 100000": Row("run {study} --device cpu --image-size 100000", "1024 px"),
    "evaluate --image-size 100000": Row(
        "evaluate nothing.pt --data {data} --device cpu --image-size 100000", "at most 1024 px"
    ),
    "evaluate --image-size 1": Row(
        "evaluate nothing.pt --data {data} --device cpu --image-size 1",
        "--image-size must be at least 16 px",
    ),
    # Learning rate, eps: finite and sane, named by the key or flag that set them
    "space lr up to 1e300": Row("run {huge_lr} --device cpu", "huge-lr.toml: space.lr.high"),
    "space lr up to 1e300 (subprocess)": Row(
        "run {huge_lr} --device cpu", "lr must be at most 1e+30", True
    ),
    "space eps up to 2": Row(
        "run {huge_eps} --device cpu", "space.eps.high: eps must be in (0, 1)"
    ),
    "train --lr 1e300": Row(
        f"{TRAIN} --data {{data}} --lr 1e300", "--lr: lr must be at most 1e+30"
    ),
    "train --lr inf": Row(f"{TRAIN} --data {{data}} --lr inf", "--lr: lr must be a finite"),
    "train --config with lr: .inf": Row(
        f"{TRAIN} --data {{data}} --config {{inf_lr}}", "inf-lr.yaml: lr must be a finite number"
    ),
    "train --weight-decay nan": Row(
        f"{TRAIN} --data {{data}} --weight-decay nan", "weight_decay must be a finite number"
    ),
    "train --config with epochs: 1.5": Row(
        f"{TRAIN.replace(' --epochs 1', '')} --data {{data}} --config {{half_epoch}}",
        "half-epoch.json: epochs must be a whole number",
    ),
    # Seeds: what torch's generators (train) and NumPy's (a study's sampler) take
    "train --seed 2**70": Row(
        f"{TRAIN} --data {{data}} --seed 1180591620717411303424", "--seed: seed must be at most"
    ),
    "study seed 2**70": Row("run {huge_seed} --device cpu", "huge-seed.toml: study.seed"),
    # Checkpoints: a file in the way, another run's checkpoint, an interval that is never due
    "--checkpoint-dir that is a file": Row(
        f"{TRAIN} --data {{data}} --checkpoint-dir {{a_file}}", "is a file, not a folder"
    ),
    "--checkpoint-dir under a file": Row(
        f"{TRAIN} --data {{data}} --checkpoint-dir {{a_file}}/run", "a-file is a file"
    ),
    "run --checkpoint-dir that is a file": Row(
        "run {study} --device cpu --checkpoint-dir {a_file}", "a-file is a file, not a folder"
    ),
    "--resume from another model's checkpoint": Row(
        f"{TRAIN} --data {{data}} --checkpoint-dir {{other_model_run}} --resume",
        "model='resnet34', not 'resnet18'",
    ),
    "--resume from a checkpoint of other classes": Row(
        f"{TRAIN} --data {{data}} --checkpoint-dir {{other_classes_run}} --resume",
        "trained on 3 classes (a, b, c), but the data holds 2 classes",
    ),
    "--checkpoint-every-seconds nan": Row(
        f"{TRAIN} --data {{data}} --checkpoint-every-seconds nan", "every_seconds=nan"
    ),
    # Heartbeats: an interval threading cannot wait, a grace no clock reaches
    "heartbeat interval 10**12": Row(
        "run {huge_heartbeat} --device cpu", "huge-heartbeat.toml: heartbeat.interval_seconds"
    ),
    "heartbeat interval 10**12 (subprocess)": Row(
        "run {huge_heartbeat} --device cpu", "must be 1 to 3600", True
    ),
    "heartbeat grace 10**14": Row("run {huge_grace} --device cpu", "heartbeat.grace_seconds"),
    # Sizes with a typo's extra zeros: refused, named with their bound, before a storage is made
    "run --trials 10**30": Row(
        f"run {{study}} --device cpu --trials {10**30}",
        "(trials): study.trials must be at most 1000000, but got 1" + "0" * 30,
    ),
    "run --epochs 10**19": Row(
        f"run {{study}} --device cpu --epochs {10**19}",
        f"(epochs): train: epochs must be at most 100000, but got epochs={10**19}",
    ),
    "train --batch-size 10**10": Row(
        f"{TRAIN} --data {{data}} --batch-size {10**10}",
        f"--batch-size: batch_size must be at most 65536 images, but got batch_size={10**10}",
    ),
    "train --epochs 10**19": Row(
        f"{TRAIN} --data {{data}} --epochs {10**19}", "--epochs: epochs must be at most 100000"
    ),
    "run --trials-per-worker 10**12": Row(
        f"run {{study}} --device cpu --trials-per-worker {10**12}",
        f"--trials-per-worker must be at most 256, but got {10**12}",
    ),
    "run --workers 10**12": Row(
        f"run {{study}} --device cpu --workers {10**12}",
        f"--workers must be at most 256, but got {10**12}",
    ),
    "run --workers-per-gpu 1000": Row(
        "run {study} --workers-per-gpu 1000",
        "--workers-per-gpu must be at most 256, but got 1000",
    ),
    "study trials 10**30": Row(
        "run {huge_trials} --device cpu", "huge-trials.toml: study.trials must be at most 1000000"
    ),
    "study epochs 10**19": Row(
        "run {huge_epochs} --device cpu", "huge-epochs.toml: train: epochs must be at most 100000"
    ),
    "study timeout_minutes 1e300": Row(
        "run {huge_timeout} --device cpu",
        "huge-timeout.toml: study.timeout_minutes must be at most 525600, but got 1e+300",
    ),
    "study trials_per_worker 10**12": Row(
        "run {huge_fusion} --device cpu", "huge-fusion.toml: study.trials_per_worker must be at"
    ),
    # Batches and data sets too small for BatchNorm, or for classification
    "train --batch-size 1": Row(
        f"{TRAIN} --data {{data}} --batch-size 1", "--batch-size: batch_size must be at least 2"
    ),
    "study batch_size 1": Row("run {batch_of_one} --device cpu", "data.batch_size"),
    "a data set of one class": Row(f"{TRAIN} --data {{one_class}}", "one class (class_0)"),
    "a data set of one training image": Row(
        f"{TRAIN} --data {{one_image}}", "classification needs at least 2"
    ),
    "run on a data set of one class": Row(
        "run {study} --device cpu --data {one_class}", "one class (class_0)"
    ),
    # A holdout that leaves a class nothing to train on: known from the listing, before decoding
    "validation_fraction 0.99": Row(
        "run {large_holdout} --device cpu",
        "large-holdout.toml: data.validation_fraction: a holdout of fraction=0.99 takes all 2",
    ),
    # Counted after the cap, which the line names: the folder holds more than it says
    "validation_fraction beside a per_class cap": Row(
        "run {capped_holdout} --device cpu",
        "has 1 training image(s), but a holdout needs at least 2 per class (one to validate on, "
        "one to train on); add images or use the official val split (data.per_class = 1 caps "
        "each class)",
    ),
}
FILE_ROWS: dict[str, Row] = {
    # Round two: weights files, output paths and images that are not what they claim
    # Weights files: every field checked, and the classes against the folder's listing, before an
    # image is decoded or cached
    "weights of 5 classes, data of 2": Row(_evaluate("five_classes"), "trained on 5 classes"),
    "weights of 5 classes (subprocess)": Row(
        _evaluate("five_classes"), "five_classes.pt was trained on 5", True
    ),
    "weights with image_size 'big'": Row(_evaluate("size_big"), "its image_size is 'big'"),
    "weights with model None": Row(_evaluate("model_none"), "model_none.pt is damaged"),
    "weights whose model is a tensor": Row(
        _evaluate("model_tensor"), "its model is a tensor of shape (3,)"
    ),
    "weights whose classes are a string": Row(_evaluate("classes_str"), "its classes is"),
    "weights with no parameters": Row(_evaluate("empty_model"), "missing (conv1.weight"),
    "weights that are a plain tensor": Row(_evaluate("plain_tensor"), "holds a tensor"),
    "weights that are a list": Row(_evaluate("plain_list"), "holds [1, 2, 3] (a list)"),
    "weights cut in half": Row(_evaluate("truncated"), "truncated.pt is not a weights"),
    "weights that are text": Row(_evaluate("text"), "text.pt is not a weights file"),
    "weights that are a folder": Row("evaluate {files} --data {data}", "is a folder"),
    # Output paths: a folder where a file goes, a file where a folder goes, refused before work
    "evaluate -o a folder": Row(
        _evaluate("five_classes") + " -o {files}/out.html", "out.html is a folder"
    ),
    "report -o a folder": Row(
        "report --study s -o {files}/out.html --storage sqlite:///{existing}", "out.html is a fold"
    ),
    "report -o under a file": Row(
        "report --study s -o {a_file}/r.html --storage sqlite:///{existing}", "a-file is a file"
    ),
    "report --png-dir a file": Row(
        "report --study s -o r.html --png-dir {a_file} --storage sqlite:///{existing}",
        "--png-dir",
    ),
    "report -o into a new folder, study not there": Row(
        "report --study nope -o nowhere/r.html --storage sqlite:///{existing}", "nope"
    ),
    "trials -o a folder": Row(
        "trials --study s -o {files}/out.csv --storage sqlite:///{existing}", "out.csv is a folder"
    ),
    "export -o a folder": Row(
        "export --study s -o {files}/best.toml --storage sqlite:///{existing}", "best.toml is a"
    ),
    "export -o a folder of no format's name": Row(
        "export --study s -o {files} --format toml --storage sqlite:///{existing}", "is a folder"
    ),
    "export's weights file a folder": Row(
        "export --study s -o {files}/best2.toml --storage sqlite:///{existing}", "best2.weights.pt"
    ),
    "export --checkpoint-dir a file": Row(
        "export --study s -o best3.toml --checkpoint-dir {a_file} --storage sqlite:///{existing}",
        "--checkpoint-dir",
    ),
    "train --checkpoint-dir a file": Row(
        f"{TRAIN} --data {{data}} --checkpoint-dir {{a_file}}", "checkpoint folder"
    ),
    "train --cache-dir under a file": Row(
        f"{TRAIN} --data {{data}} --cache-dir {{a_file}}/cache", "a-file is a file"
    ),
    # Images: 32-bit pixels of unknown range, found only by decoding
    "float TIFF named .png": Row(f"{TRAIN} --data {{float_image}}", "f.png"),
}
ROWS.update(STORAGE_ROWS)
ROWS.update(NUMBER_ROWS)
ROWS.update(FILE_ROWS)
CASES = [
    pytest.param(row, id=name, marks=[pytest.mark.postgres] if row.postgres else [])
    for name, row in ROWS.items()
]


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
    before = listing(tmp_path)

    status, out, err = _run(row, row.argv.format(**inputs).split(" "), capsys)

    assert "Traceback" not in out + err
    assert SECRET not in out + err
    lines = err.strip().split("\n")  # a progress bar redrawn with \r is one line
    assert status == 2, err
    assert len(lines) <= 2 and lines[-1].startswith("hpsearch: error: "), err
    assert row.expect.format(**inputs) in err
    assert listing(tmp_path) == before
