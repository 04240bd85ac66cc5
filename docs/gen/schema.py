"""The study file's JSON Schema, for editors that check and complete TOML against one (taplo and
the Even Better TOML extension: a `#:schema` line at the top of the file).

Draft 4, the draft taplo implements. The keys, types, defaults, choices and numeric bounds come
from study_file.py's model of the code; the few rules that tie sections together are written
here from StudyConfig's checks (`_check_plan`), and the tests hold the loader to agree with them.

    python -m docs.gen.schema      # rewrite docs/study-file.schema.json from the code
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from docs.gen.study_file import (
    KINDS,
    REQUIRED,
    REQUIRED_WITH_SPACE_ONLY,
    Key,
    Section,
    capitalized,
    sections,
    sentence,
)

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "study-file.schema.json"
DRAFT = "http://json-schema.org/draft-04/schema#"
NOT_ALLOWED: dict[str, Any] = {"not": {}}  # a key that must be absent


def study_file_schema() -> dict[str, Any]:
    model = sections()
    return {
        "$schema": DRAFT,
        "title": "hpsearch study file",
        "description": "A study file of hpsearch (studies/NAME.toml): what a study searches and "
        "how. Generated from search/studyfile by docs/gen/schema.py; the study-file reference "
        "of the documentation says the same in words.",
        "type": "object",
        "properties": {section.name: _section_schema(section) for section in model},
        "additionalProperties": False,
        "required": ["study"],
        # A study searches a [space] (and then needs its trial budget) or runs its [[points]]
        # (whose number is the budget unless given), never both; [[warm_start]] precedes a search.
        "anyOf": [
            {
                "required": ["space"],
                "properties": {"study": {"required": [REQUIRED_WITH_SPACE_ONLY[1]]}},
            },
            {"required": ["points"]},
        ],
        "not": {"required": ["space", "points"]},
        "dependencies": {"warm_start": ["space"]},
    }


def _section_schema(section: Section) -> dict[str, Any]:
    table: dict[str, Any] = {
        "type": "object",
        "properties": {key.name: _key_schema(key) for key in section.keys},
        "additionalProperties": False,
    }
    required = [
        key.name
        for key in section.keys
        if key.default is REQUIRED and (section.name, key.name) != REQUIRED_WITH_SPACE_ONLY
    ]
    if required:
        table["required"] = required
    if section.name in KINDS:
        table["anyOf"] = _by_kind(section)
    if section.array:
        return {"type": "array", "items": table}
    return table


def _key_schema(key: Key) -> dict[str, Any]:
    schema = dict(key.schema)
    described = [sentence(key.doc)] if key.doc else []
    if key.rules:
        described.append(sentence(capitalized("; ".join(key.rules))))
    if key.applies_to:
        described.append(f"Read by {', '.join(key.applies_to)} only.")
    if described:
        schema["description"] = " ".join(described)
    if key.default not in (REQUIRED, None):
        schema["default"] = list(key.default) if isinstance(key.default, tuple) else key.default
    return schema


def _by_kind(section: Section) -> list[dict[str, Any]]:
    """One branch per kind: its name, and none of the keys that only other kinds read. The
    default kind also matches a table that names no kind."""
    kind_key = next(key for key in section.keys if key.name == "kind")
    branches = []
    for kind, keys in KINDS[section.name].items():
        ignored = [key.name for key in section.keys if key.applies_to and key.name not in keys]
        branch: dict[str, Any] = {
            "properties": {"kind": {"enum": [kind]}, **dict.fromkeys(ignored, NOT_ALLOWED)}
        }
        if kind != kind_key.default:
            branch["required"] = ["kind"]
        branches.append(branch)
    return branches


def schema_text() -> str:
    return json.dumps(study_file_schema(), indent=2) + "\n"


def main() -> int:
    SCHEMA_FILE.write_text(schema_text())
    print(f"wrote {SCHEMA_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
