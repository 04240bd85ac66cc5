"""What a data source names, checked without torchvision: an Imagenette name, a .tar.gz of a data
folder, or a folder that exists. `hpsearch run` checks its data this way before torch is imported
(seconds), so that a mistyped path is refused at once; trainer.sources then fetches, extracts and
reads it."""

from __future__ import annotations

from pathlib import Path

from trainer.errors import DataError

# Names a user may pass instead of a folder, mapped to torchvision's Imagenette sizes.
IMAGENETTE = {"imagenette-160": "160px", "imagenette-320": "320px", "imagenette-full": "full"}
EXPECTED_LAYOUT = "train/<class>/* and val/<class>/*"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def check_data_source(data: str | Path) -> None:
    """An Imagenette name, an archive, or a folder; DataError naming the path otherwise. What the
    folder holds is checked when it is listed (trainer.listing)."""
    if isinstance(data, str) and data in IMAGENETTE:
        return
    path = Path(data).expanduser()
    if is_archive(path):
        return
    if not path.exists():
        raise DataError(
            f"data folder {path} does not exist; expected a folder with {EXPECTED_LAYOUT}, "
            f"a .tar.gz of one, or one of: {', '.join(IMAGENETTE)}"
        )
    if not path.is_dir():
        raise DataError(
            f"data {path} is neither a folder nor a .tar.gz/.tgz archive; "
            f"expected a folder with {EXPECTED_LAYOUT}"
        )
