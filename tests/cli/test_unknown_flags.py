"""A flag a command does not take: one line that names the command's own --help, where its flags
are listed (hpsearch's --help lists only commands), and the flag it has by a similar name."""

from __future__ import annotations

import pytest

from search.cli import main


@pytest.mark.parametrize(
    ("argv", "help_named", "suggested"),
    [
        (["run", "study.toml", "--trails", "3"], "`hpsearch run --help`", "--trials"),
        (["status", "--stdy", "quick"], "`hpsearch status --help`", "--study"),
        (["export", "--study", "quick", "--fromat=toml"], "`hpsearch export --help`", "--format"),
    ],
)
def test_a_misspelt_flag_names_the_command_s_help_and_the_flag_meant(
    capsys, argv, help_named, suggested
):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    error = capsys.readouterr().err
    assert exit.value.code == 2
    assert error.count("\n") == 1 and error.startswith("hpsearch: error: unrecognized arguments")
    assert help_named in error
    assert f"did you mean {suggested}?" in error


def test_an_unknown_word_is_refused_without_a_made_up_suggestion(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--study", "quick", "-o", "report.html", "extra"])
    error = capsys.readouterr().err
    assert "unrecognized arguments: extra" in error and "did you mean" not in error
    assert "`hpsearch report --help`" in error


def test_version_names_the_version_and_the_commit_a_trial_would_record(capsys):
    # `hpsearch --version` answered "the following arguments are required: COMMAND"
    from search.run.version import code_version

    with pytest.raises(SystemExit) as ended:
        main(["--version"])
    assert ended.value.code == 0
    assert capsys.readouterr().out == f"hpsearch {code_version()}\n"


@pytest.mark.parametrize(
    ("argv", "meant"),
    [
        # argparse took a flag's prefix for the flag: --trials-per-worker 12, twelve trials fused
        (["worker", "--study", "s", "--trials", "12"], "--trials is a flag of run, slurm and "),
        (["status", "--stu", "quick"], "did you mean --study?"),
    ],
)
def test_a_flag_s_prefix_is_not_taken_for_the_flag(capsys, argv, meant):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    error = capsys.readouterr().err
    assert exit.value.code == 2 and "unrecognized arguments" in error and meant in error, error
