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
