"""The generated parts of pages: a page names what goes where with a marker,

    <!-- generated: cli -->                 the command-line reference
    <!-- generated: study-file SECTION -->  one section of the study file, as a table

and `render` puts it there (HTML comments, so that on GitHub the page reads on around them). An
unknown marker is an error, so a misspelt one fails the build instead of leaving a hole in the
page. The pages MkDocs reads from outside docs/ (the benchmarks' README and RESULTS) are
`copied_pages`."""

from __future__ import annotations

import re
from pathlib import Path

from docs.gen.cli import cli_markdown
from docs.gen.study_file import section_markdown, sections

# A marker quoted in a code span (`<!-- generated: cli -->`) is text about markers, not one.
MARKER = re.compile(r"(?<!`)<!-- generated: ([\w-]+)(?: ([\w-]+))? -->(?!`)")
ROOT = Path(__file__).resolve().parents[2]
# Pages of the site that are files elsewhere in the repository, with the links between them
# rewritten to the site's names.
COPIED = {
    "performance/benchmarks.md": ROOT / "benchmarks" / "README.md",
    "performance/results.md": ROOT / "benchmarks" / "RESULTS.md",
}
RENAMED_LINKS = {"README.md": "benchmarks.md", "RESULTS.md": "results.md"}


class UnknownMarker(ValueError):
    pass


def render(markdown: str) -> str:
    # Blank lines around, so that a table starts a block even where the marker ends a paragraph.
    return MARKER.sub(
        lambda match: "\n\n" + generated(match.group(1), match.group(2)) + "\n", markdown
    )


def generated(what: str, argument: str | None) -> str:
    if what == "cli" and argument is None:
        return cli_markdown()
    if what == "study-file":
        found = [section for section in sections() if section.name == argument]
        if found:
            return section_markdown(found[0])
    raise UnknownMarker(
        f"unknown marker '<!-- generated: {what}{' ' + argument if argument else ''} -->'; "
        "known: cli, study-file SECTION (" + ", ".join(section.name for section in sections()) + ")"
    )


def markers(markdown: str) -> list[tuple[str, str | None]]:
    return [(match.group(1), match.group(2)) for match in MARKER.finditer(markdown)]


def copied_pages() -> dict[str, str]:
    """The site's copies of files outside docs/, by their path in the site."""
    pages = {}
    for name, source in COPIED.items():
        text = source.read_text()
        for old, new in RENAMED_LINKS.items():
            text = text.replace(f"]({old})", f"]({new})")
        pages[name] = text
    return pages
