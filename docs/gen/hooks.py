"""MkDocs hooks (mkdocs.yml `hooks:`): the generated references filled into their pages, the
benchmarks' pages copied in, and a stale study-file schema refused.

MkDocs loads this file by its path, so the repository root is put on sys.path first: `docs.gen`
is not an installed package, and `search` must be this checkout's, not another installed one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mkdocs.exceptions import PluginError  # noqa: E402
from mkdocs.structure.files import File, Files  # noqa: E402

from docs.gen.pages import UnknownMarker, copied_pages, render  # noqa: E402
from docs.gen.schema import SCHEMA_FILE, schema_text  # noqa: E402


def on_pre_build(config: Any) -> None:
    if not SCHEMA_FILE.exists() or SCHEMA_FILE.read_text() != schema_text():
        raise PluginError(
            f"{SCHEMA_FILE.relative_to(ROOT)} does not match the study-file code; "
            "rewrite it with `python -m docs.gen.schema` and commit it"
        )


def on_files(files: Files, config: Any) -> Files:
    for name, text in copied_pages().items():
        files.append(File.generated(config, name, content=text))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    try:
        return render(markdown)
    except UnknownMarker as error:
        raise PluginError(f"{page.file.src_uri}: {error}") from None
