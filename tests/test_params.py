"""params.yaml input paths cannot escape the repository, and a stage says so in one line."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from callreason.errors import InputError
from callreason.io import load_params

ROOT = Path(__file__).parents[1]


def write_params(folder: Path, **data_paths: str) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(data_paths)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder / "params.yaml"


def test_paths_inside_the_repository_are_accepted(tmp_path):
    assert load_params(write_params(tmp_path, labeled="data/sub/../labeled.parquet"))["data"]["taxonomy"]


@pytest.mark.parametrize("value", ["../outside.parquet", "/etc/passwd", "data/../../outside.parquet"])
def test_a_path_outside_the_repository_is_refused(tmp_path, value):
    repo = tmp_path / "repo"
    repo.mkdir()
    with pytest.raises(InputError, match="data.labeled: .* outside the repository"):
        load_params(write_params(repo, labeled=value))


def test_a_symlink_that_leaves_the_repository_is_refused(tmp_path):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (tmp_path / "taxonomy.json").write_text("{}")
    (repo / "data" / "taxonomy.json").symlink_to(tmp_path / "taxonomy.json")
    with pytest.raises(InputError, match="data.taxonomy"):
        load_params(write_params(repo, taxonomy="data/taxonomy.json"))


def test_a_stage_reports_the_escaping_path_in_one_line(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    write_params(repo, unlabeled="../../pool.parquet")
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "stages.filter"], cwd=repo, capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "data.unlabeled" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in repo.iterdir()) == ["params.yaml"]


def test_exponent_floats_are_numbers_as_in_yaml_1_2(tmp_path):
    """PyYAML alone reads ``1e-4`` as a string; DVC (YAML 1.2) and a user mean a number."""
    from callreason.params import settings_from_params

    text = (ROOT / "params.yaml").read_text().replace("encoder_lr: 5.0e-5", "encoder_lr: 1e-4", 1)
    (tmp_path / "params.yaml").write_text(text)
    params = load_params(tmp_path / "params.yaml")
    assert params["level_1"]["encoder_lr"] == 1e-4
    assert settings_from_params(params).levels["level_1"].encoder_lr == 1e-4
    assert params["data"]["labeled"] == yaml.safe_load(text)["data"]["labeled"]  # strings stay strings


def test_a_stage_reports_broken_yaml_in_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: 42\ntrain:\n  batch_size: [16\n")
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "stages.filter"], cwd=tmp_path, capture_output=True, text=True,
                            env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "not valid YAML at line" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_params_that_are_not_a_mapping_are_refused(tmp_path):
    (tmp_path / "params.yaml").write_text("- seed\n- epochs\n")
    with pytest.raises(InputError, match="must be a mapping of sections"):
        load_params(tmp_path / "params.yaml")


# --------------------------------------------------------------------------- typed settings

def test_the_committed_params_yaml_becomes_typed_settings():
    from callreason.params import load_settings
    from callreason.taxonomy import LEVELS

    settings = load_settings(ROOT / "params.yaml")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert settings.epochs == raw["epochs"] and settings.train.frozen_layers == raw["train"]["frozen_layers"]
    assert set(settings.levels) == set(LEVELS)
    assert settings.levels["level_3"].encoder_lr == float(raw["level_3"]["encoder_lr"])


@pytest.mark.parametrize("section, key, value, message", [
    ("train", "batch_size", 0, "train.batch_size must be an integer >= 1, got 0"),
    ("train", "batch_size", 8.5, "train.batch_size must be an integer >= 1"),
    ("train", "linear_probe", "yes", "train.linear_probe must be true or false, got 'yes'"),
    ("filter", "min_confidence", 1.5, r"filter.min_confidence must be a number in \[0, 1\], got 1.5"),
    ("split", "test_fraction", 1.0, r"split.test_fraction must be a number in \(0, 1\)"),
    ("model", "pooling", "max", "model.pooling must be one of auto, mean, cls"),
    ("model", "max_windows", 0, "model.max_windows must be auto or an integer >= 1, got 0"),
    ("model", "max_length", "long", "model.max_length must be auto or an integer >= 8, got 'long'"),
    ("select_uncertain", "strategy", "random", "select_uncertain.strategy must be one of"),
    ("level_2", "encoder_lr", "fast", "level_2.encoder_lr must be a number"),
])
def test_a_bad_value_is_named_with_its_key(section, key, value, message):
    from callreason.params import settings_from_params

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params[section][key] = value
    with pytest.raises(InputError, match=f"^params.yaml: {message}"):
        settings_from_params(params)


def test_a_misspelled_or_missing_key_is_named():
    from callreason.params import settings_from_params

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["patiense"] = params["train"].pop("patience")
    with pytest.raises(InputError, match="missing train.patience; unknown train.patiense"):
        settings_from_params(params)


def test_every_problem_of_params_yaml_is_named_in_one_run():
    from callreason.params import settings_from_params

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    train_keys = ", ".join(params["train"])
    params["model"]["max_length"] = "long"
    params["model"]["max_windows"] = 0
    params["train"]["patiense"] = params["train"].pop("patience")
    params["train"]["loss"] = "hinge"
    params["level_3"]["head_lr"] = "fast"
    del params["epochs"]
    with pytest.raises(InputError) as raised:
        settings_from_params(params)
    assert raised.value.lines == [
        "params.yaml: missing top-level key 'epochs'",
        "params.yaml: model.max_length must be auto or an integer >= 8, got 'long'",
        "params.yaml: model.max_windows must be auto or an integer >= 1, got 0",
        f"params.yaml: missing train.patience; unknown train.patiense; expected keys {train_keys}",
        "params.yaml: train.loss must be one of cross_entropy, gce, bootstrap, got 'hinge'",
        "params.yaml: level_3.head_lr must be a number in [0, inf], got 'fast'",
    ]


def test_a_stage_prints_each_problem_of_params_yaml_on_its_own_line(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["batch_size"] = 0
    params["select_uncertain"]["size"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "stages.filter"], cwd=tmp_path, capture_output=True, text=True,
                            env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "error [filter]: params.yaml: train.batch_size must be an integer >= 1, got 0",
        "error [filter]: params.yaml: select_uncertain.size must be an integer >= 1, got -1",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_each_section_checks_exactly_the_fields_of_its_settings():
    from dataclasses import fields

    from callreason.params import CHECKS

    for cls, checks in CHECKS.items():
        assert list(checks) == [f.name for f in fields(cls)], cls.__name__
