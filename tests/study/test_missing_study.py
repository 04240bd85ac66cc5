"""A study that is not found is named with the storage looked in and the studies it holds, and,
where one prints the same as the name asked for, why they differ."""

from __future__ import annotations

import optuna

from search.cli import main
from search.study.storage import open_storage


def test_a_study_name_that_prints_the_same_but_encodes_its_accents_otherwise_is_pointed_at(
    tmp_path, capsys
):
    """An é written as e and a combining accent (a name pasted from a macOS file name): the line
    read "no study named 'études'; it holds: 'études'"."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(study_name="e\u0301tudes", storage=open_storage(url))
    assert main(["status", "--storage", url, "--study", "\u00e9tudes"]) == 2
    err = capsys.readouterr().err
    assert (
        "; 'e\\u0301tudes' prints the same, its accents encoded otherwise than '\\xe9tudes''s"
        in err
    )
