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


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_declares_every_module_it_imports(name):
    module = STAGES[name]["cmd"].split("-m ")[1].split()[0]
    code = (f"import importlib, sys; importlib.import_module({module!r}); "
            "print(' '.join(m for m in sys.modules if m.startswith('callreason.')))")
    imported = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    needed = {f"{m.replace('.', '/')}.py" for m in imported.split()} | {f"{module.replace('.', '/')}.py"}
    assert needed <= dep_paths(STAGES[name]), f"{name}: add to deps in dvc.yaml: {sorted(needed - dep_paths(STAGES[name]))}"


def test_stage_params_exist_in_params_yaml():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, stage in STAGES.items():
        for key in stage.get("params", []):
            node = params
            for part in key.split("."):
                assert part in node, f"{name}: params.yaml has no {key}"
                node = node[part]
