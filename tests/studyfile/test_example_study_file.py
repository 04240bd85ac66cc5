"""The study-file reference's example (docs/reference/study-file.md, once the README's) is a study
file: it loads, every section it shows is read, and it is not mistaken for studies/quick.toml (the
first run's file, which it once copied and went stale)."""

from __future__ import annotations

import re

from search.studyfile import load_study_config
from tests.helpers import ROOT

PAGE = ROOT / "docs" / "reference" / "study-file.md"


def test_the_reference_example_study_file_loads(tmp_path):
    [example] = [
        block
        for block in re.findall(r"```toml\n(.*?)```", PAGE.read_text(), re.DOTALL)
        if block.startswith("[study]")
    ]
    path = tmp_path / "example.toml"
    path.write_text(example)
    config = load_study_config(path)
    assert config.study.name != "quick"
    assert config.space is not None and config.warm_start
    assert (config.pruner.kind, config.sampler.kind) == ("median", "tpe")
