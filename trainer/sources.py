"""Where a data set's images come from: a folder, a .tar.gz of one (extracted once per version of
the archive file), or an Imagenette name whose archive torchvision downloads into the user data
folder ($HPSEARCH_DATA_ROOT), extracted the same way (trainer.archives)."""

from __future__ import annotations

import errno
import glob
import hashlib
import http.client
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import platformdirs
import torchvision.datasets.utils as torchvision_utils
from torchvision.datasets import Imagenette

from trainer.archives import EXTRACTION_ERRORS, extract, remove_abandoned_staging
from trainer.errors import DataError, os_error_in_chain
from trainer.naming import given
from trainer.source_names import EXPECTED_LAYOUT, IMAGENETTE, check_data_source, is_archive

logger = logging.getLogger("trainer.sources")

# How many folders deep in an extracted archive its train/ and val/ are looked for
ARCHIVE_DEPTH = 3


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
        return _download_imagenette(data, root, progress)
    path = Path(data).expanduser()
    if is_archive(path):
        return _extract_once(path, root, progress)
    return path.resolve()


def _download_imagenette(name: str, root: Path, progress: bool) -> Path:
    # torchvision's own table: the message names the archive it really fetches, its md5 checks it
    url, md5 = Imagenette._ARCHIVES[IMAGENETTE[name]]
    folder = root / Path(url).stem
    remove_abandoned_staging(root)
    if folder.exists():
        # Only a complete extraction is renamed into place; an older hpsearch let torchvision
        # extract straight into the data root, and one that was interrupted left a part.
        if not ((folder / "train").is_dir() and (folder / "val").is_dir()):
            raise DataError(
                f"{folder} holds no train/ and val/ (left by an interrupted download?); "
                f"delete it and {name} is downloaded again"
            )
        return folder
    archive = root / Path(url).name
    root.mkdir(parents=True, exist_ok=True)
    try:
        torchvision_utils.download_url(url, root, md5=md5)
    except (OSError, RuntimeError, http.client.HTTPException) as exc:
        archive.unlink(missing_ok=True)  # cut short or not matching its md5: of no use, and large
        full = os_error_in_chain(exc, (errno.ENOSPC, errno.EDQUOT))
        if full is not None:  # no fault of the network's: downloading it yourself fills it too
            raise DataError(
                f"no space left on {root} to download {name} from {url} ({one_line(full)}); "
                "free space there, or set HPSEARCH_DATA_ROOT to a folder on a larger disk"
            ) from exc
        raise DataError(
            f"could not download {name} from {url} ({one_line(exc)}); download and extract "
            f"it yourself so that {folder}/train and {folder}/val exist, or pass "
            f"{given('data', 'PATH')} pointing at a folder with train/ and val/"
        ) from exc
    # Kept when the extraction fails (a full disk, a kill): checked by its md5, not downloaded again
    _extract(archive, folder, progress, inner=folder.name)
    archive.unlink(missing_ok=True)  # another process that extracted it too may have been first
    return folder


def _extract_once(archive: Path, root: Path, progress: bool) -> Path:
    target = root / _extracted_name(archive)
    remove_abandoned_staging(root)
    extracted = not target.exists()
    if extracted:
        _extract(archive, target, progress)
    holding = _data_folders(target)
    if len(holding) != 1:
        found = (
            f"holds {len(holding)} ({', '.join(str(p.relative_to(target)) for p in holding)})"
            if holding
            else f"holds none{_half_of_one(target)}"
        )
        shutil.rmtree(target, ignore_errors=True)  # of no use to any run, where it stayed for good
        raise DataError(
            f"archive {archive} should hold one folder with train/ and val/, but {found}; "
            f"expected {EXPECTED_LAYOUT} inside one folder"
        )
    if extracted:
        # Said once, here: later runs, logs and reports name the extracted folder, not the archive.
        # A warning of trainer's logger, for the disk it takes: one line on a terminal, and a
        # record like the others in a worker's JSON or text log (a printed line broke a JSON one)
        logger.warning(
            f"extracted {archive} into {target}: later runs read it from there (delete it to "
            f"free the space; HPSEARCH_DATA_ROOT moves it){_earlier_versions(archive, target)}"
        )
    return holding[0]


def _half_of_one(target: Path) -> str:
    """`: it has train/ but no val/ in imagenette` for the shallowest folder of the extraction at
    `target` that holds one of the two."""
    for level in _levels(target):
        for folder in level:
            has = [name for name in ("train", "val") if (folder / name).is_dir()]
            if len(has) == 1:
                missing = "val" if has == ["train"] else "train"
                inside = f" in {folder.relative_to(target)}" if folder != target else ""
                return f": it has {has[0]}/ but no {missing}/{inside}"
    return ""


def _data_folders(target: Path) -> list[Path]:
    """The shallowest folders in `target` holding train/ and val/, down to ARCHIVE_DEPTH levels:
    an archive is often made of the folder above the data (`tar czf data.tgz work/imagenette`)."""
    for level in _levels(target):
        holding = [path for path in level if (path / "train").is_dir() and (path / "val").is_dir()]
        if holding:
            return holding
    return []


def _levels(target: Path) -> Iterator[list[Path]]:
    """The folders of `target`, level by level, down to ARCHIVE_DEPTH (hidden ones left out)."""
    level = [target]
    for _ in range(ARCHIVE_DEPTH + 1):
        yield level
        level = [
            child
            for path in level
            for child in sorted(path.iterdir())
            if child.is_dir() and not child.name.startswith((".", "__MACOSX"))
        ]


def _extracted_name(archive: Path) -> str:
    """The archive's name without its suffix and a hash of its path, size and modification time:
    an extracted folder belongs to one archive file, and a new version of it is extracted anew."""
    stat = archive.stat()
    identity = f"{archive.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    return f"{_stem(archive)}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def _stem(archive: Path) -> str:
    suffix = ".tar.gz" if archive.name.lower().endswith(".tar.gz") else ".tgz"
    return archive.name[: -len(suffix)]


def _earlier_versions(archive: Path, target: Path) -> str:
    """Where an archive was replaced, its earlier extractions stay until deleted: said here."""
    others = sorted(
        path.name
        for path in target.parent.glob(f"{glob.escape(_stem(archive))}-{'?' * 12}")
        if path != target and path.is_dir()
    )
    if not others:
        return ""
    return (
        f"; {target.parent} also holds {', '.join(others)}, extracted from archives of the same "
        "name (an earlier version?): delete those no run reads"
    )


def _extract(archive: Path, target: Path, progress: bool, *, inner: str | None = None) -> None:
    try:
        extract(archive, target, progress, inner=inner)
    except EXTRACTION_ERRORS as exc:
        # Wherever a wrapper put it (a TarError raised from it, one raised while handling it)
        full = os_error_in_chain(exc, (errno.ENOSPC, errno.EDQUOT))
        if full is not None:
            raise DataError(
                f"no space left on {target.parent} to extract {archive} ({one_line(full)}); free "
                "space there, or set HPSEARCH_DATA_ROOT to a folder on a larger disk"
            ) from exc
        raise DataError(
            f"could not extract {archive} into {target} ({one_line(exc)}); check that it is a "
            "complete, undamaged .tar.gz of a folder with train/ and val/ (copy or download it "
            "again)"
        ) from exc
