"""A run's file names, and the owner a weights file records, read without torch.

`hpsearch export` checks that the weights it copies belong to the trial it exports; loading torch
for that alone would cost the command seconds. A file `torch.save` writes is a zip archive whose
`data.pkl` holds the payload; the owner is a plain dict in it. The reader below unpickles that
payload with every tensor left out: it builds nothing but Python's own containers, refuses any
class outside torch and `collections.OrderedDict`, and gives every torch name an inert stand-in.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any

from trainer.errors import ConfigError

CHECKPOINT_NAME = "last.pt"
WEIGHTS_NAME = "weights.pt"


def check_weights_path(path: str | Path) -> Path:
    """`path` as a Path, refused (ConfigError) when it is a folder or names no file: said before
    torch is loaded to read it."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"weights file {path} is a folder; name the {WEIGHTS_NAME} in it")
    if not path.is_file():
        raise ConfigError(f"weights file {path} does not exist")
    return path


def read_owner(path: str | Path) -> dict[str, Any] | None:
    """The `owner` a weights file records (None for one that records none); a file that is no
    weights file is a ConfigError naming it."""
    payload = _payload_without_tensors(Path(path))
    if not isinstance(payload, dict) or "model" not in payload:
        raise ConfigError(f"{path} is not a weights file saved by `hpsearch train`")
    return payload.get("owner")


def _payload_without_tensors(path: Path) -> Any:
    try:
        with zipfile.ZipFile(path) as archive:
            (name,) = [item for item in archive.namelist() if item.endswith("/data.pkl")]
            with archive.open(name) as pickled:
                payload = _NoTensors(pickled).load()
        check_checksums(path)  # the tensors too: export copies them as they are
        return payload
    # Any failure means "not a file torch.save wrote": a bad zip, no data.pkl or two, a class
    # that has no place in a weights file; or one it began to write, cut short.
    except (OSError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError):
        expected = f"the {WEIGHTS_NAME} that a search trial or `hpsearch train` writes"
        why = "it looks cut short or damaged (a write or copy that did not end)"
        raise ConfigError(
            f"{path} is not a weights file: "
            + (f"{why}, where {expected} was expected" if begins_as_saved(path) else expected)
        ) from None


def check_checksums(path: Path) -> None:
    """A ValueError naming the first record of the archive at `path` whose bytes fail their
    checksum. torch.load reads a file whose bytes a disk or a copy changed in place without a word:
    a run resumed from it trained on the damage and failed as diverged, its lineage lost; weights
    exported or scored from it were silently wrong. It costs one more read of the file, from the
    page cache torch.load just filled."""
    with zipfile.ZipFile(path) as archive:
        damaged = archive.testzip()
    if damaged is not None:
        raise ValueError(f"its record {damaged} fails its checksum: damaged since it was written")


def begins_as_saved(path: Path) -> bool:
    """Whether the file begins as every file `torch.save` writes (a zip archive): one that then
    fails to read was cut short or damaged, not another kind of file."""
    try:
        with path.open("rb") as file:
            return file.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _inert(*args: Any, **kwargs: Any) -> None:
    """What a tensor, a storage or any other torch object of the file becomes: nothing."""


class _NoTensors(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" or module.startswith("torch."):
            return _inert
        raise pickle.UnpicklingError(f"{module}.{name} has no place in a weights file")

    def persistent_load(self, pid: Any) -> None:
        return None  # a tensor's storage: left in the archive, unread
