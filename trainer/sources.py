"""Where a data set's images come from: a folder, a .tar.gz of one (extracted once), or an
Imagenette name that torchvision downloads into the user data folder ($HPSEARCH_DATA_ROOT)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import platformdirs
from torchvision.datasets import Imagenette
from tqdm import tqdm

from trainer.errors import DataError
from trainer.naming import given
from trainer.source_names import EXPECTED_LAYOUT, IMAGENETTE, check_data_source, is_archive


def class_names(folders: tuple[str, ...]) -> tuple[str, ...]:
    """What a person calls each class: an Imagenette WordNet id by its first name (n01440764 ->
    tench) from torchvision's Imagenette, any other folder by its own name. Folder names stay the
    classes' identity (in weights files and JSON); these are for figures and tables."""
    # A private table of torchvision's; a version without it leaves the folder names.
    known = getattr(Imagenette, "_WNID_TO_CLASS", {})
    names = tuple(known[folder][0] if folder in known else folder for folder in folders)
    return names if len(set(names)) == len(names) else folders


def env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def default_data_root() -> Path:
    return env_path("HPSEARCH_DATA_ROOT") or Path(platformdirs.user_data_dir("hpsearch")) / "data"


def resolve_data_dir(
    data: str | Path, *, data_root: Path | None = None, progress: bool = True
) -> Path:
    """The folder holding train/ and val/: downloads an Imagenette name, extracts a .tar.gz once."""
    root = (
        (Path(data_root) if data_root is not None else default_data_root()).expanduser().resolve()
    )
    check_data_source(data)
    if isinstance(data, str) and data in IMAGENETTE:
        return _download_imagenette(data, root)
    path = Path(data).expanduser()
    if is_archive(path):
        return _extract_once(path, root, progress)
    return path.resolve()


def _download_imagenette(name: str, root: Path) -> Path:
    size = IMAGENETTE[name]
    # torchvision's own table, so the message names the archive it really fetches.
    url = Imagenette._ARCHIVES[size][0]
    folder = root / Path(url).stem
    if folder.exists():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    try:
        Imagenette(root, split="train", size=size, download=True)
    except (OSError, RuntimeError) as exc:
        raise DataError(
            f"could not download {name} from {url} ({one_line(exc)}); download and extract "
            f"it yourself so that {folder}/train and {folder}/val exist, or pass "
            f"{given('data', 'PATH')} pointing at a folder with train/ and val/"
        ) from exc
    return folder


def _extract_once(archive: Path, root: Path, progress: bool) -> Path:
    suffix = ".tar.gz" if archive.name.lower().endswith(".tar.gz") else ".tgz"
    target = root / archive.name[: -len(suffix)]
    if not target.exists():
        _extract(archive, target, progress)
        # Said once, here: later runs, logs and reports name the extracted folder, not the archive
        print(
            f"extracted {archive} into {target}: later runs read it from there (delete it to "
            "free the space; HPSEARCH_DATA_ROOT moves it)",
            file=sys.stderr,
        )
    holding = [
        path
        for path in [target, *sorted(target.iterdir())]
        if (path / "train").is_dir() and (path / "val").is_dir()
    ]
    if len(holding) != 1:
        raise DataError(
            f"archive {archive} (extracted into {target}) should hold one folder with train/ "
            f"and val/, but holds {len(holding)}; expected {EXPECTED_LAYOUT} inside one folder"
        )
    return holding[0]


def _extract(archive: Path, target: Path, progress: bool) -> None:
    made = [folder for folder in (target.parent, *target.parent.parents) if not folder.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    # Extract beside the target, then rename: an interrupted run never leaves a half folder behind
    # that a later run would take for a complete one.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with tarfile.open(archive) as tar:
            members = tqdm(
                tar.getmembers(),
                desc=f"extracting {archive.name}",
                unit="file",
                disable=not progress,
            )
            tar.extractall(staging, members=members, filter="data")
        _rename_unless_done(staging, target)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(
            f"could not extract {archive} into {target} ({one_line(exc)}); "
            "check that it is a complete .tar.gz of a folder with train/ and val/"
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in made:  # a broken archive leaves no empty data root behind either
            with contextlib.suppress(OSError):  # not empty: the extraction succeeded
                folder.rmdir()


def _rename_unless_done(staging: Path, target: Path) -> None:
    try:
        os.rename(staging, target)
    except OSError:
        if not target.is_dir():  # otherwise another process extracted the same archive first
            raise
