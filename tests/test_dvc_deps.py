"""Every package module a stage imports is a declared dependency of that stage in dvc.yaml,
so editing code re-runs exactly the stages that use it (and nothing reads an undeclared file)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def dep_paths(stage: dict) -> set[str]:
    return {d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])}


def test_each_stage_declares_exactly_the_modules_it_runs():
    """Both ways: every module a stage imports (lazily too) is a dependency, and no other module is."""
    result = subprocess.run([sys.executable, "-m", "tools.dvc_deps", "--check"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(STAGES))
def test_the_derived_deps_hold_every_module_python_actually_loads(name):
    """The import scan misses nothing: what Python loads when it imports the stage is among the derived deps."""
    from tools.dvc_deps import code_deps

    module = STAGES[name]["cmd"].split("-m ")[1].split()[0]
    code = (f"import importlib, sys; importlib.import_module({module!r}); "
            "print(' '.join(m for m in sys.modules if m.startswith('callreason.')))")
    imported = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    loaded = {f"{m.replace('.', '/')}.py" for m in imported.split()} | {f"{module.replace('.', '/')}.py"}
    loaded = {path for path in loaded if (ROOT / path).exists()}
    assert loaded <= set(code_deps(module)), sorted(loaded - set(code_deps(module)))


def test_a_lazy_import_is_a_dependency_and_a_type_checking_one_is_not(tmp_path):
    from tools.dvc_deps import code_deps

    (tmp_path / "stages").mkdir()
    (tmp_path / "callreason").mkdir()
    (tmp_path / "stages" / "x.py").write_text("from callreason import a\n")
    (tmp_path / "callreason" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from callreason.c import C\n"
        "def f():\n    from callreason.b import g\n    return g\n")
    (tmp_path / "callreason" / "b.py").write_text("from . import d\n")
    (tmp_path / "callreason" / "c.py").write_text("")
    (tmp_path / "callreason" / "d.py").write_text("")
    assert code_deps("stages.x", tmp_path) == ["stages/x.py", "callreason/a.py", "callreason/b.py", "callreason/d.py"]


def test_stage_params_exist_in_params_yaml():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, stage in STAGES.items():
        for key in stage.get("params", []):
            node = params
            for part in key.split("."):
                assert part in node, f"{name}: params.yaml has no {key}"
                node = node[part]


def test_rewrite_takes_each_stage_s_modules_from_its_own_cmd_and_keeps_data_deps(tmp_path):
    from tools.dvc_deps import rewrite

    (tmp_path / "stages").mkdir()
    (tmp_path / "callreason").mkdir()
    (tmp_path / "stages" / "a.py").write_text("import callreason.x\n")
    (tmp_path / "stages" / "b.py").write_text("")
    (tmp_path / "callreason" / "x.py").write_text("")
    text = ("stages:\n  one: &one  # anchored\n    cmd: python -m stages.a --level 1\n    deps: &deps\n"
            "    - stages/a.py\n    - callreason/stale.py\n    - data/in.parquet\n  two:\n    <<: *one\n"
            "    cmd: python -m stages.b\n    deps:\n    - stages/b.py\n    - callreason/x.py\n")
    new, changes = rewrite(text, tmp_path)
    assert yaml.safe_load(new)["stages"]["one"]["deps"] == ["stages/a.py", "callreason/x.py", "data/in.parquet"]
    assert yaml.safe_load(new)["stages"]["two"]["deps"] == ["stages/b.py"]
    assert changes == {"one": (["callreason/stale.py"], ["callreason/x.py"]), "two": (["callreason/x.py"], [])}


def test_training_reads_no_evaluate_setting_so_an_inference_batch_size_retrains_nothing():
    """The train stages do not list ``evaluate``, and what a level's training uses does not change with it."""
    import dataclasses

    from callreason.params import load_settings
    from callreason.training import fit_settings

    for level in ("level_1", "level_2", "level_3"):
        assert not any(key.split(".")[0] == "evaluate" for key in STAGES[f"train_l{level[-1]}"]["params"])
    settings = load_settings(ROOT / "params.yaml")
    other = dataclasses.replace(settings, evaluate=dataclasses.replace(settings.evaluate, batch_size=7))
    assert fit_settings(other, "level_1") == fit_settings(settings, "level_1")
    bigger = dataclasses.replace(settings, train=dataclasses.replace(settings.train, batch_size=32))
    assert fit_settings(bigger, "level_1").eval_batch_size == 128
