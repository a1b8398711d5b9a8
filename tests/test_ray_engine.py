"""`callreason predict --engine ray`: on a local Ray instance, the same predictions, counts and guarantees as
the local engine."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.conftest import make_labeled_rows, run_entry_point

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from callreason.ray_engine import MIN_OBJECT_STORE_BUDGET, object_store_budget  # noqa: E402


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Three parquet shards of 40 summaries: a call_id repeated across shards and within one (same summary),
    an empty summary, a call_id written as a number."""
    rows = make_labeled_rows(40, seed=5)[["call_id", "summary"]].reset_index(drop=True)
    rows.loc[7, "summary"] = "   "
    folder = tmp_path_factory.mktemp("ray") / "calls"
    folder.mkdir()
    rows.iloc[:15].to_parquet(folder / "part-0.parquet")
    pd.concat([rows.iloc[15:28], rows.iloc[[3]]]).to_parquet(folder / "part-1.parquet")
    pd.concat([rows.iloc[28:], rows.iloc[[30]]]).to_parquet(folder / "part-2.parquet")
    return folder


def test_ray_engine_writes_what_the_local_engine_writes(trained_run, shards):
    run, _ = trained_run
    work = shards.parent
    local = run_entry_point(("callreason", "predict", "--models", str(run), "--input", "calls", "--output",
                             "local.parquet", "--chunk-rows", "9"), work)
    distributed = run_entry_point(("callreason", "predict", "--models", str(run), "--input", "calls", "--output",
                                   "ray.parquet", "--chunk-rows", "9", "--engine", "ray", "--actors", "2"), work)
    assert local[0] == 0 and distributed[0] == 0, (local[2], distributed[2])
    assert distributed[1] == local[1].replace("local.parquet", "ray.parquet")  # same counts line
    assert "read 42 rows" in local[1] and "wrote 39 predictions" in local[1]
    expected, got = pd.read_parquet(work / "local.parquet"), pd.read_parquet(work / "ray.parquet")
    assert pq.read_schema(work / "ray.parquet").equals(pq.read_schema(work / "local.parquet"))
    text = ["call_id", "level_1", "level_2", "level_3"]
    pd.testing.assert_frame_equal(got[text], expected[text])  # same rows, same order, same paths
    probabilities = [c for c in expected.columns if c not in text]
    assert np.abs(got[probabilities].to_numpy() - expected[probabilities].to_numpy()).max() < 1e-6
    assert not ray.is_initialized()  # the Ray instance it started is shut down


def test_ray_engine_checks_the_whole_input_before_starting_ray(trained_run, shards, tmp_path):
    run, _ = trained_run
    bad = tmp_path / "calls"
    shutil.copytree(shards, bad)
    frame = pd.read_parquet(bad / "part-2.parquet")
    frame.iloc[-1, frame.columns.get_loc("summary")] = "a different summary for a repeated call_id"
    frame.to_parquet(bad / "part-2.parquet")
    code, _, err = run_entry_point(("callreason", "predict", "--models", str(run), "--input", "calls", "--output",
                                    "out.parquet", "--engine", "ray"), tmp_path)
    assert code == 2 and "different summaries" in err and "Traceback" not in err
    assert not (tmp_path / "out.parquet").exists() and not ray.is_initialized()


def test_ray_options_are_refused_with_the_local_engine(trained_run, shards):
    run, _ = trained_run
    code, _, err = run_entry_point(("callreason", "predict", "--models", str(run), "--input", "calls", "--output",
                                    "x.parquet", "--actors", "2"), shards.parent)
    assert code == 2 and "--actors applies to --engine ray only" in err
    assert not (shards.parent / "x.parquet").exists()


def test_a_failing_ray_job_is_one_line_and_writes_nothing(trained_run, shards, tmp_path):
    run, _ = trained_run
    broken = tmp_path / "run"
    shutil.copytree(run, broken)
    for weights in (broken / "level_2").glob("*.safetensors"):
        weights.write_bytes(b"not weights")
    code, _, err = run_entry_point(("callreason", "predict", "--models", str(broken), "--input", str(shards),
                                    "--output", "out.parquet", "--engine", "ray", "--actors", "1"), tmp_path)
    assert code == 2 and "Traceback" not in err, err
    assert "error [predict]: ray: " in err and "nothing was written" in err
    assert not (tmp_path / "out.parquet").exists() and not ray.is_initialized()


def test_asking_for_more_cpus_than_the_cluster_has_is_one_line_not_a_hang(trained_run, shards, tmp_path):
    run, _ = trained_run
    code, _, err = run_entry_point(("callreason", "predict", "--models", str(run), "--input", str(shards),
                                    "--output", "out.parquet", "--engine", "ray", "--cpus-per-actor", "512"), tmp_path)
    assert code == 2 and "fewer than --cpus-per-actor 512" in err and "Traceback" not in err, err
    assert not (tmp_path / "out.parquet").exists() and not ray.is_initialized()


def test_the_actor_pool_is_fixed_and_may_hold_every_cpu(trained_run, shards, tmp_path, monkeypatch):
    """--actors N starts N predictors whatever the input's size (an autoscaling pool added actors as the input
    grew, and memory with them), and a pool holding every CPU of the cluster still finishes (Ray's default
    parquet reader lists files in a task that needs a CPU: it waited behind such a pool forever)."""
    pools = []
    map_batches = ray.data.Dataset.map_batches

    def recording(self, fn, *args, **kwargs):
        pools.append(kwargs["compute"])
        return map_batches(self, fn, *args, **kwargs)

    monkeypatch.setattr(ray.data.Dataset, "map_batches", recording)
    run, _ = trained_run
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        code, out, err = run_entry_point(("callreason", "predict", "--models", str(run), "--input", str(shards),
                                          "--output", "out.parquet", "--engine", "ray", "--actors", "2"), tmp_path)
        limit = ray.data.DataContext.get_current().execution_options.resource_limits.object_store_memory
    finally:
        ray.shutdown()
    assert code == 0 and "wrote 39 predictions" in out, err
    assert [(pool.min_size, pool.max_size) for pool in pools] == [(2, 2)]
    assert limit == MIN_OBJECT_STORE_BUDGET  # 42 rows: the floor


def test_more_actors_than_the_cluster_can_place_is_one_line_not_a_hang(trained_run, shards, tmp_path):
    run, _ = trained_run
    code, _, err = run_entry_point(("callreason", "predict", "--models", str(run), "--input", str(shards),
                                    "--output", "out.parquet", "--engine", "ray", "--actors", "4096"), tmp_path)
    assert code == 2 and "4096 actors x 1 CPU(s) need 4096, the Ray cluster has" in err and "Traceback" not in err
    assert not (tmp_path / "out.parquet").exists() and not ray.is_initialized()


def test_the_object_store_budget_is_a_few_chunks_per_actor(tmp_path):
    """Four chunks of call_id + summary per actor (other columns are not read), never below the floor."""
    frame = pd.DataFrame({"call_id": [f"C{i:06d}" for i in range(2000)],
                          "summary": [f"summary {i} " + "x" * 990 for i in range(2000)],  # ~1 kB each, all distinct
                          "transcript": ["y" * 5000] * 2000})
    frame.iloc[:1000].to_parquet(tmp_path / "a.parquet")
    frame.iloc[1000:].to_parquet(tmp_path / "b.parquet")
    files = [str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")]
    per_row = object_store_budget(files, chunk_rows=10_000, actors=2) / (4 * 2 * 10_000)
    assert 1_000 < per_row < 1_100  # the transcript column (5 kB a row) does not count
    assert object_store_budget(files, chunk_rows=10_000, actors=8) == pytest.approx(
        4 * object_store_budget(files, chunk_rows=10_000, actors=2), rel=1e-6)
    assert object_store_budget(files, chunk_rows=10, actors=1) == MIN_OBJECT_STORE_BUDGET
