"""Study files: the shipped ones load, and each mistake a user can make is named with its file and
key."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from search.studyfile import (
    PrunerSettings,
    Range,
    SearchSpace,
    StudyConfig,
    StudyFileError,
    StudySettings,
    TrainSettings,
    load_study_config,
    point_to_params,
)
from trainer.config import TrainConfig

STUDIES = Path(__file__).resolve().parents[2] / "studies"
SHIPPED = sorted(STUDIES.glob("*.toml"))

VALID: dict[str, Any] = {
    "study": {"name": "test", "trials": 3},
    "data": {"source": "images", "image_size": 32, "batch_size": 8},
    "train": {"epochs": 2},
    "space": {
        "optimizer": ["sgd", "adam"],
        "lr": {"low": 1e-3, "high": 0.1},
        "eps": {"low": 1e-8, "high": 1e-6},
        "momentum": {"low": 0.0, "high": 0.9},
    },
}
POINTS: list[dict[str, Any]] = [
    {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
    {"optimizer": "adam", "lr": 8e-3, "eps": 1e-8},
]


def study(**sections: Any) -> dict[str, Any]:
    """A copy of VALID with whole sections replaced; None removes one."""
    document = copy.deepcopy(VALID)
    for name, value in sections.items():
        if value is None:
            document.pop(name, None)
        else:
            document[name] = value
    return document


def points_study(**sections: Any) -> dict[str, Any]:
    return study(
        **{"space": None, "study": {"name": "factors"}, "points": copy.deepcopy(POINTS), **sections}
    )


def write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(tomli_w.dumps(document), encoding="utf-8")
    return path


def load_error(tmp_path: Path, document: dict[str, Any]) -> str:
    path = write(tmp_path, document)
    with pytest.raises(StudyFileError) as caught:
        load_study_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    return message


def test_the_shipped_studies_are_all_there() -> None:
    names = {path.stem for path in SHIPPED}
    assert {
        "quick",
        "imagenette",
        "factor_optimizer_lr8e-3",
        "factor_optimizer_lr0.1",
        "factor_lr",
        "factor_momentum",
        "factor_model",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=[path.stem for path in SHIPPED])
def test_each_shipped_study_loads(path: Path) -> None:
    config = load_study_config(path)
    assert config.path == path
    assert path.read_text(encoding="utf-8").startswith("#"), (
        "each study file opens with a comment saying what it is for"
    )
    runs = [config.train_config(point) for point in config.points + config.warm_start]
    assert all(isinstance(run, TrainConfig) for run in runs)
    assert config.idle_pruner() is None  # a shipped study's pruner, if any, can stop trials
    assert config.idle_sampler() is None  # and its sampler, if it models, has trials to model


@pytest.mark.parametrize(
    "pruner, epochs, trials, idle",
    [
        ({"kind": "median", "warmup_epochs": 2}, 3, 10, None),
        ({"kind": "median", "warmup_epochs": 0}, 2, 10, None),
        (
            {"kind": "median", "warmup_epochs": 2},
            2,
            10,
            "it first compares trials at epoch 2 (pruner.warmup_epochs), but they train 2 "
            "epoch(s); give pruner.warmup_epochs below 2, or more epochs",
        ),
        (
            {"kind": "percentile", "warmup_epochs": 0},
            1,
            10,
            "at epoch 1 (pruner.warmup_epochs), but they train 1 epoch(s); train more epochs",
        ),
        (
            {"kind": "asha", "min_epochs": 1},
            1,
            10,
            "at epoch 1 (pruner.min_epochs), but they train 1 epoch(s); train more epochs",
        ),
        (
            {"kind": "median", "warmup_epochs": 0, "startup_trials": 5},
            4,
            5,
            "it waits for 5 finished trial(s) (pruner.startup_trials), but the budget is 5; "
            "give pruner.startup_trials below 5",
        ),
        ({"kind": "median", "warmup_epochs": 0, "startup_trials": 4}, 4, 5, None),
        ({"kind": "asha", "min_epochs": 4}, 4, 10, "at epoch 4 (pruner.min_epochs)"),
        ({"kind": "hyperband", "min_epochs": 5}, 3, 10, "at epoch 5 (pruner.min_epochs)"),
        ({"kind": "halving", "min_epochs": 2}, 3, 10, None),
        ({"kind": "none"}, 1, 1, None),
    ],
)
def test_a_pruner_that_can_stop_no_trial_early_is_named(
    tmp_path: Path, pruner: dict[str, Any], epochs: int, trials: int, idle: str | None
) -> None:
    """Optuna runs such a pruner without a word: every trial trains to its end, as with none."""
    document = study(pruner=pruner, train={"epochs": epochs})
    document["study"]["trials"] = trials
    found = load_study_config(write(tmp_path, document)).idle_pruner()
    said_if(idle, found, opening=f"pruner {pruner['kind']!r} will stop no trial early: ")


@pytest.mark.parametrize(
    "sampler, trials, idle",
    [
        ({"kind": "tpe"}, 10, "models only after 10 finished trial(s) (sampler.startup_trials)"),
        ({"kind": "tpe"}, 11, None),
        ({"kind": "gp", "startup_trials": 4}, 3, "but the budget is 3; give sampler.startup_"),
        ({"kind": "cmaes", "startup_trials": 3}, 3, 'trials below 3, or kind = "random"'),
        ({"kind": "cmaes", "startup_trials": 2}, 3, None),
        ({"kind": "random"}, 1, None),
    ],
)
def test_a_model_sampler_that_models_no_trial_is_named(
    tmp_path: Path, sampler: dict[str, Any], trials: int, idle: str | None
) -> None:
    """Optuna draws every trial of such a search at random without a word, as kind random would."""
    document = study(sampler=sampler)
    document["study"]["trials"] = trials
    found = load_study_config(write(tmp_path, document)).idle_sampler()
    said_if(idle, found, opening=f"sampler {sampler['kind']!r} will draw every trial at random: ")


def said_if(idle: str | None, found: str | None, *, opening: str) -> None:
    """None found where nothing is `idle`, else a line that opens with `opening` and says it."""
    if idle is None:
        assert found is None
    else:
        assert found is not None and found.startswith(opening) and idle in found, found


def test_idleness_is_judged_on_the_budget_the_study_keeps(tmp_path: Path) -> None:
    """A study's stored budget (`--trials`) holds over its file's `trials`."""
    document = study(sampler={"kind": "tpe", "startup_trials": 4})
    document["study"]["trials"] = 12
    config = load_study_config(write(tmp_path, document))
    assert config.idle_sampler() is None and config.idle_sampler(12) is None
    assert "but the budget is 4" in (config.idle_sampler(4) or "")


def test_a_points_study_never_samples_so_its_sampler_is_never_idle(tmp_path: Path) -> None:
    document = points_study(sampler={"kind": "tpe", "startup_trials": 50})
    assert load_study_config(write(tmp_path, document)).idle_sampler() is None


def test_shipped_studies_have_distinct_names() -> None:
    names = [load_study_config(path).study.name for path in SHIPPED]
    assert len(set(names)) == len(names)


def test_quick_study_is_small_and_scored_on_the_official_val_set() -> None:
    config = load_study_config(STUDIES / "quick.toml")
    assert (
        config.data.image_size <= 32 and config.data.per_class <= 200 and config.train.epochs <= 6
    )
    assert config.data.validation_fraction is None
    assert config.space.optimizers == ("sgd", "adam", "ranger")
    assert config.space.lr == Range(1e-4, 1.0, log=True)
    assert config.space.momentum == Range(0.0, 0.99, log=False)


def test_imagenette_study_starts_from_the_reports_winner() -> None:
    config = load_study_config(STUDIES / "imagenette.toml")
    assert config.warm_start == ({"optimizer": "ranger", "lr": 8e-3, "eps": 1e-6},)
    assert config.study.trials == 100
    assert (config.train.image_size, config.train.batch_size, config.train.epochs) == (128, 64, 20)


def test_factor_studies_run_the_reports_points_once_each() -> None:
    config = load_study_config(STUDIES / "factor_momentum.toml")
    assert [point["momentum"] for point in config.points] == [1.0, 0.9, 0.0]
    assert config.study.trials == 3, "trials defaults to the number of points"
    assert config.space is None and config.pruner.kind == "none"
    assert config.train.schedule == "constant"


def test_a_valid_study_loads_with_its_settings(tmp_path: Path) -> None:
    config = load_study_config(write(tmp_path, study()))
    assert config.study == StudySettings(name="test", trials=3)
    assert config.data.source == "images", "a relative source stays as typed"
    assert (config.train.image_size, config.train.batch_size, config.train.epochs) == (32, 8, 2)
    assert config.space.eps == Range(1e-8, 1e-6, log=True), (
        "eps is searched on a log scale by default"
    )
    assert config.space.momentum == Range(0.0, 0.9, log=False), (
        "momentum is searched on a linear scale by default"
    )
    assert config.sampler.kind == "tpe" and config.pruner.kind == "median"


def test_the_config_is_frozen(tmp_path: Path) -> None:
    config = load_study_config(write(tmp_path, study()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.study.trials = 5  # type: ignore[misc]


def test_a_trial_config_takes_only_the_settings_its_optimizer_uses(tmp_path: Path) -> None:
    config = load_study_config(write(tmp_path, study(train={"epochs": 2, "weight_decay": 1e-4})))
    run = config.train_config({"optimizer": "adam", "lr": 0.01, "eps": 1e-7})
    assert (run.optimizer, run.lr, run.eps, run.momentum) == ("adam", 0.01, 1e-7, None)
    assert run.weight_decay == 1e-4 and run.image_size == 32
    assert config.space.params_for("sgd") == {
        "lr": config.space.lr,
        "momentum": config.space.momentum,
    }


def test_unknown_key_names_the_key_the_section_and_the_file(tmp_path: Path) -> None:
    space = dict(VALID["space"], lerning_rate=0.1)
    message = load_error(tmp_path, study(space=space))
    assert (
        "unknown key 'lerning_rate' in [space]; known keys: eps, lr, model, momentum, optimizer"
        in message
    )


def test_unknown_key_in_a_range_table(tmp_path: Path) -> None:
    space = dict(VALID["space"], lr={"low": 1e-3, "hihg": 0.1})
    assert "unknown key 'hihg' in space.lr" in load_error(tmp_path, study(space=space))


def test_unknown_section_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, study(sampelr={"kind": "tpe"}))
    assert "unknown section [sampelr]" in message and "sampler" in message


@pytest.mark.parametrize(
    "lr, expected",
    [
        ({"low": 0.1, "high": 0.1}, "space.lr.high must be above low=0.1, but got 0.1"),
        ({"low": 0.5, "high": 0.1}, "space.lr.high must be above low=0.5, but got 0.1"),
        ({"low": 0, "high": 1.0}, "space.lr.low must be positive for a log range, but got 0"),
        ({"low": -1.0, "high": 1.0, "log": False}, "space.lr.low: lr must be positive"),
        ({"high": 1.0}, "space.lr.low is required"),
    ],
)
def test_bad_ranges_name_the_bound(tmp_path: Path, lr: dict[str, Any], expected: str) -> None:
    assert expected in load_error(tmp_path, study(space=dict(VALID["space"], lr=lr)))


def test_momentum_above_one_is_refused_by_the_trainer_rules(tmp_path: Path) -> None:
    space = dict(VALID["space"], momentum={"low": 0.0, "high": 1.5})
    message = load_error(tmp_path, study(space=space))
    assert "space.momentum.high" in message and "1.5" in message


@pytest.mark.parametrize(
    "sections, expected",
    [
        (
            {"data": {"batch_size": "64"}},
            "data.batch_size must be an integer, but got '64' (a string)",
        ),
        (
            {"study": {"name": "test", "trials": 2.5}},
            "study.trials must be an integer, but got 2.5",
        ),
        ({"train": {"epochs": 2, "weight_decay": "1e-4"}}, "train.weight_decay must be a number"),
        ({"train": {"epochs": 2, "nesterov": 1}}, "train.nesterov must be true or false"),
        ({"space": dict(VALID["space"], lr="0.1")}, "space.lr must be a number or a range"),
        (
            {"space": dict(VALID["space"], optimizer="sgd")},
            "space.optimizer must be a list of strings",
        ),
        (
            {"sampler": {"kind": "tpe", "multivariate": "yes"}},
            "sampler.multivariate must be true or false",
        ),
        (
            {"data": {"validation_fraction": float("nan")}},
            "data.validation_fraction must be a finite number",
        ),
    ],
)
def test_wrong_types_name_the_key(tmp_path: Path, sections: dict[str, Any], expected: str) -> None:
    assert expected in load_error(tmp_path, study(**sections))


@pytest.mark.parametrize(
    "sections, expected",
    [
        ({"data": {"image_size": 8}}, "data.image_size: image_size must be at least 16 px"),
        (
            {"data": {"validation_fraction": 1.0}},
            "data.validation_fraction must be in (0, 1), but got 1.0",
        ),
        (
            {"train": {"epochs": 2, "warmup_epochs": 3}},
            "train: warmup_epochs must be in [0, epochs]",
        ),
        ({"train": {"epochs": 2, "seed": 1}}, "train.seed belongs in [study], not in [train]"),
        ({"train": {"epochs": 2, "lr": 0.1}}, "train.lr belongs in [space] or [[points]]"),
        ({"study": {"name": "", "trials": 3}}, "study.name must be 1 to 128 printable characters"),
        (
            {"study": {"name": "x" * 129, "trials": 3}},
            "study.name must be 1 to 128 printable characters",
        ),
        # `--study x` would not find it
        ({"study": {"name": "x ", "trials": 3}}, "study.name must not begin or end with a space"),
        (
            {"study": {"name": "test", "trials": 3, "direction": "minimize"}},
            "study.direction must be 'maximize'",
        ),
        ({"study": {"trials": 3}}, "study.name is required"),
        ({"study": {"name": "test"}}, "study.trials is required"),
        (
            {"sampler": {"kind": "annealing"}},
            "sampler.kind must be one of tpe, random, grid, cmaes, gp",
        ),
        (
            {"sampler": {"kind": "random", "constant_liar": False}},
            "sampler.constant_liar does not apply to kind 'random'; it applies only to: tpe",
        ),
        (
            {"pruner": {"kind": "hyperband", "warmup_epochs": 3}},
            "pruner.warmup_epochs does not apply to kind 'hyperband'",
        ),
        (
            {"pruner": {"kind": "percentile", "percentile": 100.0}},
            "pruner.percentile must be in (0, 100)",
        ),
        (
            {"pruner": {"kind": "halving", "reduction_factor": 1}},
            "pruner.reduction_factor must be at least 2",
        ),
        (
            {"study": {"name": "test", "trials": 3, "epochs_budget": 0}},
            "study.epochs_budget must be at least 1, but got 0",
        ),
        (
            {"pruner": {"kind": "asha", "warmup_epochs": 3}},
            "pruner.warmup_epochs does not apply to kind 'asha'",
        ),
        (
            {"heartbeat": {"interval_seconds": 60, "grace_seconds": 60}},
            "heartbeat.grace_seconds must exceed interval_seconds=60, but got 60",
        ),
        (
            {"space": dict(VALID["space"], optimizer=["sgd", "adamx"])},
            "space.optimizer: unknown optimizer 'adamx'",
        ),
        (
            {"space": dict(VALID["space"], optimizer=["sgd", "sgd", "adam"])},
            "space.optimizer must name each optimizer once",
        ),
        ({"space": {"optimizer": ["adam"]}}, "space.lr is required"),
        # a typo's extra zeros: a study that would never end
        (
            {"study": {"name": "test", "trials": 10**30}},
            f"study.trials must be at most 1000000, but got {10**30}",
        ),
        (
            {"study": {"name": "test", "trials": 3, "trials_per_worker": 10**12}},
            f"study.trials_per_worker must be at most 256, but got {10**12}",
        ),
        (
            {"study": {"name": "test", "trials": 3, "timeout_minutes": 1e300}},
            "study.timeout_minutes must be at most 525600, but got 1e+300",
        ),
        (
            {"train": {"epochs": 10**19}},
            f"train: epochs must be at most 100000, but got epochs={10**19}",
        ),
    ],
)
def test_out_of_range_settings_name_the_key_and_value(
    tmp_path: Path, sections: dict[str, Any], expected: str
) -> None:
    assert expected in load_error(tmp_path, study(**sections))


def test_eps_in_a_space_without_an_optimizer_that_uses_it(tmp_path: Path) -> None:
    space = dict(VALID["space"], optimizer=["sgd"])
    message = load_error(tmp_path, study(space=space))
    assert (
        "space.eps is set, but none of the optimizers sgd uses it; it applies only to: adam"
        in message
    )


def test_momentum_in_a_space_without_sgd(tmp_path: Path) -> None:
    space = dict(VALID["space"], optimizer=["adam", "ranger"])
    assert "space.momentum is set, but none of the optimizers adam, ranger uses it" in load_error(
        tmp_path, study(space=space)
    )


def test_nesterov_with_a_momentum_range_from_zero_is_refused(tmp_path: Path) -> None:
    space = dict(VALID["space"], optimizer=["sgd"], eps=None)
    del space["eps"]
    message = load_error(tmp_path, study(space=space, train={"epochs": 2, "nesterov": True}))
    assert (
        "space (at optimizer='sgd'" in message
        and "momentum=0.0" in message
        and "nesterov" in message
    )


def test_a_point_with_a_setting_its_optimizer_ignores_is_refused(tmp_path: Path) -> None:
    points = copy.deepcopy(POINTS)
    points[1]["momentum"] = 0.9
    message = load_error(tmp_path, points_study(points=points))
    assert (
        "points[1]: momentum=0.9 does not apply to optimizer 'adam'; it applies only to: sgd"
        in message
    )


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"lr": None}, "points[0].lr is required"),
        ({"lr": "0.1"}, "points[0].lr must be a number"),
        ({"optimizer": "sgdd"}, "points[0]: unknown optimizer 'sgdd'"),
        ({"learning_rate": 0.1}, "unknown key 'learning_rate' in points[0]"),
        ({"lr": -0.1}, "points[0]: lr must be positive"),
    ],
)
def test_bad_points_are_named_by_index(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    points = copy.deepcopy(POINTS)
    points[0].update(change)
    points[0] = {key: value for key, value in points[0].items() if value is not None}
    assert expected in load_error(tmp_path, points_study(points=points))


def test_a_repeated_point_is_refused(tmp_path: Path) -> None:
    points = copy.deepcopy(POINTS) + [dict(POINTS[0])]
    assert "points[2] repeats points[0]" in load_error(tmp_path, points_study(points=points))


def test_points_only_study_defaults_trials_to_the_points_and_refuses_more(tmp_path: Path) -> None:
    config = load_study_config(write(tmp_path, points_study()))
    assert config.study.trials == 2 and config.space is None
    assert config.points[0] == {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9}
    message = load_error(tmp_path, points_study(study={"name": "factors", "trials": 3}))
    assert "study.trials must be at most the 2 points" in message


def test_integer_values_in_points_become_floats(tmp_path: Path) -> None:
    config = load_study_config(
        write(tmp_path, points_study(points=[{"optimizer": "sgd", "lr": 1, "momentum": 0}]))
    )
    assert config.points == ({"optimizer": "sgd", "lr": 1.0, "momentum": 0.0},)
    assert all(isinstance(value, float) for value in list(config.points[0].values())[1:])


def test_zero_trials_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, study(study={"name": "test", "trials": 0}))
    assert "study.trials must be at least 1, but got 0" in message


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("postgresql://user:hunter2@host/db", "a password"),
        ("postgresql+psycopg://user@host/db?password=hunter2", "query parameter 'password'"),
        ("postgresql://u@127.0.0.1/test?sslpassword=hunter2", "query parameter 'sslpassword'"),
        ("postgresql://u@host/db?sslmode=require&api_key=hunter2", "query parameter 'api_key'"),
        ("postgresql://u@host/db?token=hunter2&x=1", "query parameter 'token'"),
        # Where urlsplit sees no password: the host ends at a slash, a ? or a #
        ("postgresql://u:pa/hunter2@host/db", "a password"),
        ("postgresql://u:pa?hunter2@host/db", "a password"),
        ("postgresql://u:pa#hunter2@host/db", "a password"),
        ("postgresql://u:Sup3r@hunter2@host/db", "a password"),  # an @ left unencoded
    ],
)
def test_a_secret_in_the_storage_url_is_refused_by_its_kind_never_its_value(
    tmp_path: Path, url: str, kind: str
) -> None:
    message = load_error(tmp_path, study(study={"name": "test", "trials": 3, "storage": url}))
    assert f"study.storage must not hold a secret ({kind})" in message
    assert "HPSEARCH_STORAGE" in message and "pass storage instead" in message  # a keyword
    assert "hunter2" not in message


def test_a_storage_url_without_a_password_is_kept(tmp_path: Path) -> None:
    for url in ("postgresql://user@host:5432/db", "sqlite:///studies.db"):
        config = load_study_config(
            write(tmp_path, study(study={"name": "test", "trials": 3, "storage": url}))
        )
        assert config.study.storage == url


def test_grid_sampler_refuses_ranges(tmp_path: Path) -> None:
    message = load_error(tmp_path, study(sampler={"kind": "grid"}))
    assert (
        "sampler.kind 'grid' cannot search the range space.lr" in message
        and "[[points]]" in message
    )


def test_grid_sampler_takes_points_or_fixed_values(tmp_path: Path) -> None:
    assert (
        load_study_config(write(tmp_path, points_study(sampler={"kind": "grid"}))).sampler.kind
        == "grid"
    )
    fixed = {"optimizer": ["sgd", "adam"], "lr": 0.1}
    assert (
        load_study_config(write(tmp_path, study(space=fixed, sampler={"kind": "grid"}))).space.lr
        == 0.1
    )


def test_a_study_with_neither_space_nor_points_is_refused(tmp_path: Path) -> None:
    assert "needs a [space] to search or [[points]] to run" in load_error(
        tmp_path, study(space=None)
    )


def test_a_study_with_both_space_and_points_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, study(points=copy.deepcopy(POINTS)))
    assert "not both" in message and "[[warm_start]]" in message


@pytest.mark.parametrize(
    "point, expected",
    [
        (
            {"optimizer": "ranger", "lr": 0.01, "eps": 1e-7},
            "warm_start[0].optimizer must be one of space.optimizer",
        ),
        (
            {"optimizer": "adam", "lr": 2.0},
            "warm_start[0].lr must lie within space.lr ([0.001, 0.1]), but got 2.0",
        ),
        (
            {"optimizer": "adam", "lr": 0.01, "momentum": 0.5},
            "warm_start[0]: momentum=0.5 does not apply",
        ),
    ],
)
def test_warm_starts_must_lie_in_the_space(
    tmp_path: Path, point: dict[str, Any], expected: str
) -> None:
    assert expected in load_error(tmp_path, study(warm_start=[point]))


def test_a_warm_start_in_the_space_is_kept(tmp_path: Path) -> None:
    config = load_study_config(
        write(tmp_path, study(warm_start=[{"optimizer": "adam", "lr": 0.01, "eps": 1e-7}]))
    )
    assert config.warm_start == ({"optimizer": "adam", "lr": 0.01, "eps": 1e-7},)


def test_missing_and_malformed_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(StudyFileError, match="missing.toml: cannot read the study file"):
        load_study_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[study\nname = 'x'\n", encoding="utf-8")
    with pytest.raises(StudyFileError, match="broken.toml: not valid TOML"):
        load_study_config(broken)


def test_overrides_apply_and_are_checked_again(tmp_path: Path) -> None:
    config = load_study_config(write(tmp_path, study()))
    changed = config.with_overrides(
        trials=5,
        epochs=1,
        data="/data/imagenette",
        image_size=64,
        storage="postgresql://user:secret@host/db",
    )
    assert (changed.study.trials, changed.train.epochs, changed.data.source) == (
        5,
        1,
        "/data/imagenette",
    )
    assert changed.data.image_size == changed.train.image_size == 64
    assert changed.study.storage == "postgresql://user:secret@host/db", (
        "a flag may carry a password"
    )
    assert config.with_overrides() == config


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"epochs": 0}, "train: epochs must be positive, but got epochs=0"),
        ({"trials": 0}, "study.trials must be at least 1, but got 0"),
        ({"trials": 10**30}, f"study.trials must be at most 1000000, but got {10**30}"),
        ({"epochs": 10**19}, "train: epochs must be at most 100000"),
        ({"image_size": 8}, "data.image_size: image_size must be at least 16 px"),
        ({"data": " "}, "data.source must name an Imagenette size or a folder"),
    ],
)
def test_bad_overrides_are_refused(
    tmp_path: Path, overrides: dict[str, Any], expected: str
) -> None:
    path = write(tmp_path, study())
    with pytest.raises(StudyFileError) as caught:
        load_study_config(path).with_overrides(**overrides)
    assert str(caught.value).startswith(f"{path} with overrides ({', '.join(overrides)}): ")
    assert expected in str(caught.value)


def test_overriding_trials_of_a_points_study_beyond_its_points(tmp_path: Path) -> None:
    config = load_study_config(write(tmp_path, points_study()))
    assert config.with_overrides(trials=1).study.trials == 1
    with pytest.raises(StudyFileError, match="study.trials must be at most the 2 points"):
        config.with_overrides(trials=3)


def test_settings_check_themselves_when_built_in_code() -> None:
    with pytest.raises(ValueError, match="trials must be at least 1"):
        StudySettings(name="notebook", trials=0)
    with pytest.raises(ValueError, match="percentile must be in"):
        PrunerSettings(kind="percentile", percentile=0.0)
    space = SearchSpace(optimizers=["sgd"], lr=Range(1e-3, 1.0, log=True))
    assert space.optimizers == ("sgd",)
    with pytest.raises(ValueError, match="eps is set, but none of the optimizers sgd uses it"):
        SearchSpace(optimizers=("sgd",), lr=0.1, eps=1e-8)
    train = TrainSettings(image_size=32, batch_size=8)
    with pytest.raises(ValueError, match="train.image_size must equal data.image_size=128"):
        StudyConfig(
            path=Path("x.toml"),
            study=StudySettings(name="x", trials=1),
            data=load_study_config(STUDIES / "imagenette.toml").data,
            train=train,
            space=space,
        )


def test_point_to_params_checks_and_normalises() -> None:
    assert point_to_params({"optimizer": "sgd", "lr": 1}) == {"optimizer": "sgd", "lr": 1.0}
    with pytest.raises(ValueError, match="point: eps=1e-08 does not apply to optimizer 'sgd'"):
        point_to_params({"optimizer": "sgd", "lr": 0.1, "eps": 1e-8})
