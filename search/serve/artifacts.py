"""The artifact folder the dashboard serves reports from, with each file named `ID.html`.

Optuna's FileSystemArtifactStore names a file by its artifact id alone, so a report copied there
had no extension and opened in no browser. This store keeps Optuna's ids and interface (the
dashboard and `upload_artifact` use it unchanged) and adds a suffix to the name: a writer that
knows it (`ArtifactFolder(dir, suffix=REPORT_SUFFIX)`) writes `ID.html`; a reader finds `ID.html`
or, from before, a bare `ID`. A report is HTML whatever its `-o` is called (`r2`, `report.htm`),
so its copy is always `ID.html`, served as REPORT_MIMETYPE.

The folder is checked before anything is written, as every output path is: one that is a file,
lies under a file or cannot be made is one line naming it, not an OSError after the page is
written or the dashboard has said where it serves.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import BinaryIO

from optuna.artifacts.exceptions import ArtifactNotFound

from search import locations
from search.errors import ConfigError
from trainer.naming import named
from trainer.outputs import check_output_folder
from trainer.whole_files import replace_whole

# How a report's copy is named and served, whatever its -o was called: the page is HTML either way
REPORT_SUFFIX = ".html"
REPORT_MIMETYPE = "text/html"
# Optuna's ids are UUIDs; anything else (a path from a request, say) names no artifact here
ARTIFACT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")


class ArtifactFolder:
    """Optuna's ArtifactStore over one folder; files are named by artifact id plus `suffix`."""

    def __init__(self, folder: str | Path, suffix: str = "") -> None:
        self.folder = Path(folder)
        # Only a name's ending: an odd one (`.ht ml`) is left off, not refused, since the file it
        # copies is already written
        self.suffix = suffix if SUFFIX.fullmatch(suffix) else ""

    def open_reader(self, artifact_id: str) -> BinaryIO:
        stored = self._stored(artifact_id)
        if not stored:
            raise ArtifactNotFound(f"no artifact {artifact_id!r} in {self.folder}")
        return stored[0].open("rb")

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        path = self.folder / f"{_checked(artifact_id)}{self.suffix}"
        # Written beside it and renamed over it: until the copy is whole the dashboard serves the
        # earlier one, and a copy cut short (a full disk) leaves that one, not half a page. The
        # temporary name starts with a dot, so `_stored` never takes it for an artifact.
        replace_whole(path, lambda file: shutil.copyfileobj(content_body, file))
        for other in self._stored(artifact_id):  # an earlier copy under another name goes
            if other != path:
                other.unlink(missing_ok=True)

    def holds(self, artifact_id: str) -> bool:
        return bool(self._stored(artifact_id))

    def remove(self, artifact_id: str) -> None:
        stored = self._stored(artifact_id)
        if not stored:
            raise ArtifactNotFound(f"no artifact {artifact_id!r} in {self.folder}")
        for path in stored:
            path.unlink(missing_ok=True)

    def _stored(self, artifact_id: str) -> list[Path]:
        """The files holding the artifact: `ID.suffix` first, then a bare `ID`."""
        if not ARTIFACT_ID.fullmatch(artifact_id):
            return []
        suffixed = sorted(self.folder.glob(f"{artifact_id}.*"))
        bare = self.folder / artifact_id
        return [path for path in (*suffixed, bare) if path.is_file()]


def check_artifact_folder(folder: Path) -> None:
    """ConfigError unless reports can be copied into `folder`, made if missing."""
    try:
        check_output_folder(folder, "artifact folder")
    except ConfigError as error:
        raise ConfigError(f"{error} ({_chosen_by()})") from None


def check_served_folder(folder: Path) -> None:
    """As check_artifact_folder, but a folder that exists passes even if read-only: the dashboard
    only reads it unless someone uploads a file there."""
    if not folder.is_dir():
        check_artifact_folder(folder)


def make_artifact_folder(folder: Path) -> None:
    """`folder` made if missing. A folder the system will not make despite the checks (under
    /proc, which looks writable to root) is one line, not an OSError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"artifact folder {folder} cannot be made: {error.strerror or error}; name a folder "
            f"you may write ({_chosen_by()})"
        ) from None


def _chosen_by() -> str:
    # The folder may come from the flag, the environment or a default: both ways to move it
    return f"choose it with {named('artifacts')} or ${locations.ARTIFACTS_ENV}"


def _checked(artifact_id: str) -> str:
    if not ARTIFACT_ID.fullmatch(artifact_id):
        raise ValueError(f"artifact id must be letters, digits, - and _, but got {artifact_id!r}")
    return artifact_id
