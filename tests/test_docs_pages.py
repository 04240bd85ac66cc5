"""The hand-written pages (README.md and docs/) say what the code does, where a page lists what the
code can be asked: every `hpsearch` command line they show runs a command that exists with flags it
takes, the table of what each command writes has a row for every command, and the commands the
pages say refuse a SQLite storage that does not exist are the ones that do. (tests/test_docs.py
checks the generated references.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import search.cli
from tests.helpers import ROOT
from tests.helpers.cli import run_cli
from tests.helpers.dashboard import free_port

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# Code in a page: a fenced block, a code span, or an indented block
CODE = re.compile(r"```.*?```|`[^`\n]+`|(?:^ {4}[^\n]*\n?)+", re.DOTALL | re.MULTILINE)
COMMAND_LINE = re.compile(r"(?:\bhpsearch|python -m search) ([a-z][\w-]*)(.*)")
FLAG = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")


def parser_flags() -> dict[str, set[str]]:
    """Every command's flags, as its parser takes them."""
    parser = search.cli.build_parser()
    [commands] = [action for action in parser._actions if action.dest == "command"]
    return {name: set(sub._option_string_actions) for name, sub in commands.choices.items()}


def shown_command_lines(text: str) -> list[tuple[str, str]]:
    """(command, what follows it on its line) for every `hpsearch COMMAND ...` in the page's code,
    a `CMD --flag` code span too; a shell comment and whatever follows `&&`, `|` or `;` left out."""
    found = []
    for code in CODE.findall(text):
        code = code.strip("`").replace("\\\n", " ")
        span = re.match(r"([a-z][\w-]*) (-.*)", code)
        if span and span.group(1) in search.cli.COMMANDS:
            code = f"hpsearch {code}"
        for line in code.splitlines():
            line = re.split(r"\s#|&&|\|\s|;", line)[0]
            found.extend(
                (command, " ".join(rest.split())) for command, rest in COMMAND_LINE.findall(line)
            )
    return found


def test_a_page_shows_only_commands_and_flags_that_exist():
    flags = parser_flags()
    wrong = []
    for page in PAGES:
        for command, rest in shown_command_lines(page.read_text()):
            unknown = [flag for flag in FLAG.findall(rest) if flag not in flags.get(command, ())]
            if command not in flags or unknown:
                wrong.append(f"{page.relative_to(ROOT)}: hpsearch {command} {unknown}")
    assert wrong == []


def test_the_check_of_shown_commands_reads_blocks_spans_and_continued_lines():
    text = (
        "```bash\nhpsearch run a.toml --workers 2   # (--nope)\n```\n"
        "`status --json`, `hpsearch report --study s`\n"
        "    hpsearch slurm a.toml \\\n        --dry-run && kubectl apply --x\n"
    )
    assert shown_command_lines(text) == [
        ("run", "a.toml --workers 2"),
        ("status", "--json"),
        ("report", "--study s"),
        ("slurm", "a.toml --dry-run"),
    ]


# --- what each command writes ------------------------------------------------------------------

FILES_PAGE = ROOT / "docs" / "operations" / "files.md"


def test_the_table_of_what_each_command_writes_has_every_command():
    section = FILES_PAGE.read_text().split("## What each command writes")[1].split("\n## ")[0]
    first_cells = [line.split(" | ")[0] for line in section.splitlines() if line.startswith("| `")]
    named = {span.split()[0] for cell in first_cells for span in re.findall(r"`([^`]+)`", cell)}
    assert named == set(search.cli.COMMANDS)


# --- which commands create a storage -------------------------------------------------------------

PAGES_ON_MISSING_STORAGE = [
    ROOT / "docs" / "concepts" / "studies.md",
    ROOT / "docs" / "operations" / "failures.md",
]
# What each command needs besides --storage to get as far as opening it
REQUIRED = {
    "worker": ["--study", "s"],
    "report": ["--study", "s", "-o", "r.html"],
    "export": ["--study", "s"],
    "trials": ["--study", "s"],
}


def creators_and_refusers(page: Path) -> tuple[set[str], set[str]]:
    text = " ".join(page.read_text().split())
    said = re.search(r"Only (`.*? creates? a storage.*?): (.*?) refuses? a SQLite file", text)
    assert said, f"{page.relative_to(ROOT)} no longer says which commands create a storage"
    creators, refusers = (set(re.findall(r"`([\w-]+)`", part)) for part in said.groups())
    return creators, refusers


def commands_with_storage() -> set[str]:
    return {name for name, flags in parser_flags().items() if "--storage" in flags}


@pytest.mark.parametrize("page", PAGES_ON_MISSING_STORAGE, ids=lambda page: page.name)
def test_a_page_names_every_command_that_refuses_a_missing_sqlite_storage(page):
    creators, refusers = creators_and_refusers(page)
    assert creators.isdisjoint(refusers)
    assert creators | refusers == commands_with_storage()


def test_the_commands_said_to_refuse_a_missing_sqlite_storage_do(capsys, tmp_path):
    _, refusers = creators_and_refusers(PAGES_ON_MISSING_STORAGE[0])
    for command in sorted(refusers):
        port = ["--port", free_port()] if command == "dashboard" else []
        argv = [command, "--storage", "sqlite:///typo.db", *REQUIRED.get(command, []), *port]
        status, _, err = run_cli(capsys, *argv)
        assert (status, "typo.db does not exist" in err) == (2, True), (argv, err)
        assert list(tmp_path.iterdir()) == [], f"{command} wrote {list(tmp_path.iterdir())}"
