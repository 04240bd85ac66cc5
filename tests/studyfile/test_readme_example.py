"""The README's example study file is one: it loads, every section it shows is read, and it is
not mistaken for studies/quick.toml (the first run's file, which it once copied and went stale)."""

from __future__ import annotations

import re
from pathlib import Path

from search.studyfile import load_study_config

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_example_study_file_loads(tmp_path):
    [example] = [
        block
        for block in re.findall(r"```toml\n(.*?)```", README.read_text(), re.DOTALL)
        if block.startswith("[study]")
    ]
    path = tmp_path / "example.toml"
    path.write_text(example)
    config = load_study_config(path)
    assert config.study.name != "quick"
    assert config.space is not None and config.warm_start
    assert (config.pruner.kind, config.sampler.kind) == ("median", "tpe")
