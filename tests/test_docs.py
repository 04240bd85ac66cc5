"""The generated references say what the code does: every command and flag of `hpsearch` and every
key the study-file loader accepts has its entry, the JSON Schema accepts the shipped study files,
refuses what the loader refuses and states only the loader's bounds, and the committed schema is
the one the code generates. Fast: no MkDocs here (.ci/run builds the site with --strict).

What the code accepts is asked of the code itself (the parser's --help, the loader's error for an
unknown key), not of the generator, so a generator that skips something fails here."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState, create_trial

import search.cli
from docs.gen.cli import cli_markdown
from docs.gen.pages import UnknownMarker, markers, render
from docs.gen.rungs_figure import CONTINUATION, FIRST, rungs_figure, segments
from docs.gen.schema import SCHEMA_FILE, schema_text, study_file_schema
from docs.gen.study_file import section_markdown, sections
from search import attrs
from search.errors import StudyFileError
from search.studyfile.load import study_config_from_document
from search.studyfile.sections import SECTIONS
from tests.helpers import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

DOCS = ROOT / "docs"
STUDY_FILE_PAGE = DOCS / "reference" / "study-file.md"
SEARCH = {"study": {"name": "s", "trials": 2}, "space": {"optimizer": ["sgd"], "lr": 0.1}}
POINTS = {"study": {"name": "s"}, "points": [{"optimizer": "sgd", "lr": 0.1}]}
VALIDATOR = jsonschema.Draft4Validator(study_file_schema())


def loads(document: dict[str, Any]) -> bool:
    try:
        study_config_from_document(Path("s.toml"), document)
    except StudyFileError:
        return False
    return True


def refusal(document: dict[str, Any]) -> str:
    with pytest.raises(StudyFileError) as refused:
        study_config_from_document(Path("s.toml"), document)
    return str(refused.value)


def schema_accepts(document: dict[str, Any]) -> bool:
    return VALIDATOR.is_valid(document)


# --- the command line ------------------------------------------------------------------------


def command_sections() -> dict[str, str]:
    """The CLI reference, cut into each command's part."""
    parts = re.split(r"^### hpsearch ([\w-]+) \{#[\w-]+\}$", cli_markdown(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def test_the_cli_reference_names_no_handler_module():
    """A command group's docstring names its handler modules for developers; users read the rest."""
    page = cli_markdown()
    assert not re.search(r"handlers?:|\w+\.py\b", page), re.findall(r".{60}\w+\.py.{20}", page)


def help_flags(name: str, capsys: pytest.CaptureFixture[str]) -> set[str]:
    """The flags `hpsearch NAME --help` lists (its lines that start with a flag, not the flags
    its help text mentions)."""
    with pytest.raises(SystemExit):
        search.cli.build_parser().parse_args([name, "--help"])
    lines = re.findall(r"^  (-.*?)(?: {2,}|$)", capsys.readouterr().out, flags=re.MULTILINE)
    flags = {flag for line in lines for flag in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", line)}
    return flags - {"-h", "--help"}


def test_every_command_has_its_part_of_the_cli_reference():
    assert list(command_sections()) == list(search.cli.COMMANDS)


@pytest.mark.parametrize("name", list(search.cli.COMMANDS))
def test_every_flag_of_a_command_is_in_its_part(name, capsys):
    flags = help_flags(name, capsys)
    documented = set(re.findall(r"`(--?[a-zA-Z][\w-]*)", command_sections()[name]))
    assert flags <= documented, f"{name}: missing {sorted(flags - documented)}"
    # A flag the reference names that --help does not would be a hidden or removed one.
    named_in_table = {
        flag
        for line in command_sections()[name].splitlines()
        if line.startswith("| `-")
        for flag in re.findall(r"`(--?[a-zA-Z][\w-]*)", line.split(" | ")[0])
    }
    assert named_in_table == flags


def test_a_hidden_flag_stays_hidden():
    assert "--worker-index" not in command_sections()["worker"]


# --- the study file: every key the loader knows ----------------------------------------------


def known_keys(document: dict[str, Any]) -> list[str]:
    """The loader's own list of keys, from its refusal of an unknown one."""
    listed = re.search(r"known (?:keys|sections): (.*)$", refusal(document))
    assert listed, refusal(document)
    return listed.group(1).split(", ")


def with_unknown_key(section: str) -> dict[str, Any]:
    if section in ("points", "warm_start"):
        document = copy.deepcopy(POINTS if section == "points" else SEARCH)
        document[section] = [{"optimizer": "sgd", "lr": 0.1, "zzz": 1}]
        return document
    document = copy.deepcopy(SEARCH)
    document.setdefault(section, {})["zzz"] = 1
    return document


def test_the_sections_are_the_loaders():
    assert known_keys({**SEARCH, "zzz": {}}) == list(SECTIONS)
    assert [section.name for section in sections()] == list(SECTIONS)
    assert list(study_file_schema()["properties"]) == list(SECTIONS)


@pytest.mark.parametrize("section", SECTIONS)
def test_every_key_the_loader_knows_is_in_the_reference_and_the_schema(section):
    known = sorted(known_keys(with_unknown_key(section)))
    [model] = [found for found in sections() if found.name == section]
    table = section_markdown(model)
    assert sorted(re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE)) == known
    schema = study_file_schema()["properties"][section]
    table_schema = schema.get("items", schema)
    assert sorted(table_schema["properties"]) == known
    assert all(key.doc for key in model.keys), "a key without a comment in the code, or a note"


def test_a_range_has_the_keys_the_loader_knows():
    document = copy.deepcopy(SEARCH)
    document["space"]["lr"] = {"low": 0.1, "high": 1.0, "zzz": 1}
    lr = study_file_schema()["properties"]["space"]["properties"]["lr"]
    [range_schema] = [option for option in lr["anyOf"] if option["type"] == "object"]
    assert sorted(range_schema["properties"]) == sorted(known_keys(document))


def test_every_section_has_its_place_on_the_study_file_page():
    found = markers(STUDY_FILE_PAGE.read_text())
    assert sorted(found) == sorted(("study-file", section) for section in SECTIONS)
    assert markers((DOCS / "reference" / "cli.md").read_text()) == [("cli", None)]


def test_a_misspelt_marker_is_an_error():
    with pytest.raises(UnknownMarker, match="study-file SECTION"):
        render("<!-- generated: study-file sapce -->")


# --- the schema agrees with the loader -------------------------------------------------------


def test_the_committed_schema_is_the_generated_one():
    assert SCHEMA_FILE.read_text() == schema_text(), "run `python -m docs.gen.schema`"
    jsonschema.Draft4Validator.check_schema(study_file_schema())


def shipped_study_files() -> list[Path]:
    return sorted((ROOT / "studies").glob("*.toml"))


@pytest.mark.parametrize("path", shipped_study_files(), ids=lambda path: path.name)
def test_the_schema_accepts_the_shipped_study_files(path):
    assert path.read_text().startswith("#:schema ../docs/study-file.schema.json\n")
    assert (path.parent / "../docs/study-file.schema.json").resolve() == SCHEMA_FILE
    document = tomllib.loads(path.read_text())
    assert list(VALIDATOR.iter_errors(document)) == []


def test_the_schema_accepts_the_example_on_the_study_file_page():
    [example] = re.findall(r"```toml\n(\[study\].*?)```", STUDY_FILE_PAGE.read_text(), re.DOTALL)
    assert schema_accepts(tomllib.loads(example))


def changed(base: dict[str, Any], **tables: dict[str, Any] | list[Any] | None) -> dict[str, Any]:
    document = copy.deepcopy(base)
    for name, table in tables.items():
        if table is None:
            document.pop(name)
        elif isinstance(table, dict):
            document[name] = {**document.get(name, {}), **table}
        else:
            document[name] = table
    return document


REFUSED = {
    "an unknown key": changed(SEARCH, data={"size": 32}),
    "an unknown section": changed(SEARCH, searchspace={}),
    "a string for a number": changed(SEARCH, study={"trials": "8"}),
    "true for a number": changed(SEARCH, heartbeat={"max_retries": True}),
    "an unknown optimizer": changed(SEARCH, space={"optimizer": ["lion"]}),
    "an unknown schedule": changed(SEARCH, train={"schedule": "step"}),
    "a sampler key its kind does not read": changed(
        SEARCH, sampler={"kind": "random", "startup_trials": 3}
    ),
    "a pruner key the default kind does not read": changed(SEARCH, pruner={"percentile": 10.0}),
    "a space without a budget": {**SEARCH, "study": {"name": "s"}},
    "a space and points": changed(SEARCH, points=POINTS["points"]),
    "neither a space nor points": changed(SEARCH, space=None),
    "a warm start without a space": changed(POINTS, warm_start=[{"optimizer": "sgd", "lr": 0.1}]),
    "a point without lr": changed(POINTS, points=[{"optimizer": "sgd"}]),
    "no study": changed(SEARCH, study=None),
    "a range without high": changed(SEARCH, space={"lr": {"low": 0.1}}),
}


@pytest.mark.parametrize("document", REFUSED.values(), ids=REFUSED.keys())
def test_what_the_loader_refuses_the_schema_refuses(document):
    assert not loads(document)
    assert not schema_accepts(document)


def test_what_the_loader_accepts_the_schema_accepts():
    accepted = [
        SEARCH,
        POINTS,
        changed(SEARCH, sampler={"startup_trials": 3}),  # the default kind, tpe, reads it
        changed(SEARCH, pruner={"kind": "asha", "min_epochs": 2}),
        changed(SEARCH, space={"lr": {"low": 1e-3, "high": 1.0, "log": False}}),
        changed(SEARCH, warm_start=[{"optimizer": "sgd", "lr": 0.1}]),
    ]
    for document in accepted:
        assert loads(document) and schema_accepts(document), document


# --- every bound the schema states is the loader's -------------------------------------------


# Bounds that depend on another key ("[0, epochs]", grace above the interval): the schema states
# the fixed end only, and a value at it may still be refused
RELATIVE_BOUNDS = {"train.warmup_epochs", "heartbeat.interval_seconds", "heartbeat.grace_seconds"}


def bounded_keys() -> list[tuple[str, str, dict[str, Any], tuple[str, ...]]]:
    """(section, key, the number's schema, the kinds that read it) for every bounded number."""
    found = []
    for section in sections():
        for key in section.keys:
            options = key.schema.get("anyOf", [key.schema])
            for option in options:
                if "minimum" in option or "maximum" in option:
                    found.append((section.name, key.name, option, key.applies_to))
    return found


def with_value(section: str, key: str, value: float, kinds: tuple[str, ...]) -> dict[str, Any]:
    """A study that is fine but for section.key = value (in a kind that reads it, with an
    optimizer that uses it)."""
    optimizer = {"eps": "adam", "momentum": "sgd"}.get(key, "sgd")
    if section == "points":
        return changed(POINTS, points=[{"optimizer": optimizer, "lr": 0.1, key: value}])
    if section == "warm_start":  # inside a space wider than any bound
        space = {"optimizer": [optimizer], "lr": {"low": 1e-12, "high": 1e30}}
        high = {"lr": 1e30, "eps": 1.0 - 1e-9}.get(key, 1.0)  # each as wide as its bounds
        space |= {key: {"low": 0.0 if key == "momentum" else 1e-12, "high": high}}
        point = {"optimizer": optimizer, "lr": 0.1, key: value}
        return changed(SEARCH, space=space, warm_start=[point])
    if section == "space":
        return changed(SEARCH, space={"optimizer": [optimizer], key: value})
    return changed(SEARCH, **{section: {key: value, **({"kind": kinds[0]} if kinds else {})}})


@pytest.mark.parametrize(
    "section, key, schema, kinds",
    bounded_keys(),
    ids=[f"{section}.{key}" for section, key, _, _ in bounded_keys()],
)
def test_a_bound_in_the_schema_is_the_loaders(section, key, schema, kinds):
    if f"{section}.{key}" in RELATIVE_BOUNDS:
        pytest.skip("its bound at an end depends on another key")
    integer = schema["type"] == "integer"
    for bound, exclusive, sign in (
        (schema.get("minimum"), schema.get("exclusiveMinimum", False), 1),
        (schema.get("maximum"), schema.get("exclusiveMaximum", False), -1),
    ):
        if bound is None:
            continue
        step = 1 if integer else max(1e-6, abs(bound) * 1e-9)  # 1e30 + 1e-6 is 1e30
        past = bound - sign * step
        inside = bound + sign * step if exclusive else bound
        assert not loads(with_value(section, key, past, kinds)), (key, past)
        assert loads(with_value(section, key, inside, kinds)), (key, inside)
        assert loads(with_value(section, key, bound, kinds)) != exclusive, (key, bound)


def numeric_keys() -> list[tuple[str, str, dict[str, Any], tuple[str, ...]]]:
    found = []
    for section in sections():
        for key in section.keys:
            for option in key.schema.get("anyOf", [key.schema]):
                if option.get("type") in ("integer", "number"):
                    found.append((section.name, key.name, option, key.applies_to))
    return found


@pytest.mark.parametrize(
    "section, key, schema, kinds",
    numeric_keys(),
    ids=[f"{section}.{key}" for section, key, _, _ in numeric_keys()],
)
def test_a_bound_the_loader_holds_is_in_the_schema(section, key, schema, kinds):
    """The other way round: a value far out that the loader refuses, the schema refuses too, so
    a bound whose message the generator cannot read fails here rather than vanish from the docs."""
    if f"{section}.{key}" == "train.warmup_epochs":
        pytest.skip("bounded by epochs alone")
    for far, bound in ((-(10**9), "minimum"), (10**9, "maximum")):
        if not loads(with_value(section, key, far, kinds)):
            assert bound in schema, (key, far)


# --- the pictures ------------------------------------------------------------------------------


def shown_pictures() -> list[tuple[Path, str]]:
    """(page, picture path as written) for every picture a page shows in Markdown."""
    return [
        (page, target)
        for page in sorted(DOCS.rglob("*.md"))
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text())
        if "://" not in target
    ]


def test_every_picture_a_page_shows_is_committed_and_small():
    assert any(target.endswith("rungs-real.png") for _, target in shown_pictures())
    for page, target in shown_pictures():
        picture = (page.parent / target).resolve()
        assert picture.is_file(), f"{page.relative_to(ROOT)} shows {target}, which is missing"
        # docs/gen/screenshots.py keeps each under 200 KB: a page's pictures stay light in git
        assert picture.stat().st_size < 200_000, picture


def test_the_rungs_figure_draws_each_trial_s_epochs_and_how_it_ended():
    """docs/gen/rungs_figure.py on made trials: trial 0 pauses at epoch 1 and trial 1 continues
    it to the end, trial 2 completes, trial 3 pauses and its continuation (4) is closed."""

    def made(number: int, state: TrialState, epochs: int, **user_attrs: Any) -> FrozenTrial:
        values = {epoch: 0.1 * epoch + 0.01 * number for epoch in range(1, epochs + 1)}
        value = max(values.values()) if state == TrialState.COMPLETE else None
        return create_trial(
            state=state, value=value, intermediate_values=values, user_attrs=user_attrs
        )

    paused = {attrs.PAUSED_AT: 1}
    study = optuna.create_study(direction="maximize")
    for trial in (
        made(0, TrialState.PRUNED, 1, **paused),
        made(1, TrialState.COMPLETE, 4, **continuation_of(0), **{attrs.RESUMED_FROM_EPOCH: 1}),
        made(2, TrialState.COMPLETE, 4),
        made(3, TrialState.PRUNED, 1, **paused),
        made(4, TrialState.PRUNED, 0, **continuation_of(3), **{attrs.PROMOTION_CLOSED: "no"}),
    ):
        study.add_trial(trial)
    trials = study.get_trials()
    assert [tuple(s[:6]) for s in segments(trials, rungs=(1, 2))] == [
        (0, 0, 0, 1, FIRST, "promoted"),
        (0, 1, 1, 4, CONTINUATION, "complete"),
        (2, 2, 0, 4, FIRST, "complete"),
        (3, 3, 0, 1, FIRST, "paused"),
    ], "the closed continuation never trained: no bar"
    by_number = {s.number: s for s in segments(trials, rungs=(1, 2))}
    assert by_number[1].at_rungs == {2: pytest.approx(0.21)}, "rung 1 is trial 0's, not its own"
    figure = rungs_figure(trials, rungs=(1, 2), epochs=4)
    assert list(figure.layout.yaxis.ticktext) == ["trial 0 → 1", "trial 2", "trial 3"]


def continuation_of(paused: int) -> dict[str, Any]:
    return {attrs.PROMOTION_OF: paused, attrs.RETRY_OF: paused, attrs.RETRIED_FROM: paused}
