"""The Python API's checks name the keyword at fault (trainer.naming); `hpsearch`, which calls the
same functions, names it by its flag (search.cli.flag_of). Every keyword a message names must
then be a flag some command takes, or the command line would tell its user to fix a flag that
does not exist."""

from __future__ import annotations

import re

from docs.gen.cli import subcommand_parsers
from search.cli import build_parser, flag_of
from tests.helpers import ROOT

# `named("image_size")`, `given('device', 'cpu')`: a keyword a message names
NAMING = re.compile(r"\b(?:named|given)\(\s*[\"'](\w+)[\"']")


def test_every_keyword_a_message_names_is_the_flag_of_a_command():
    sources = [*(ROOT / "search").rglob("*.py"), *(ROOT / "trainer").rglob("*.py")]
    keywords = {
        keyword for path in sources for keyword in NAMING.findall(path.read_text(encoding="utf-8"))
    }
    flags = {
        option
        for parser in subcommand_parsers(build_parser()).values()
        for action in parser._actions
        for option in action.option_strings
    }
    assert {"path", "image_size", "format", "top", "study"} <= keywords  # the pattern finds them
    missing = {keyword: flag_of(keyword) for keyword in keywords if flag_of(keyword) not in flags}
    assert missing == {}
