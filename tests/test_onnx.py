"""The ONNX export and the ONNX Runtime backend of predict: the same paths as PyTorch, logits within float error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from callreason.errors import InputError
from callreason.predict import PREDICTION_COLUMNS, HierarchicalPredictor
from callreason.taxonomy import LEVELS
from tests.conftest import make_labeled_rows, run_entry_point, tree_digest

pytest.importorskip("onnxruntime")
from callreason.onnx_backend import OnnxPredictor, load_predictor  # noqa: E402


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    from callreason.onnx_backend import export_run

    run, taxonomy = trained_run
    out = tmp_path_factory.mktemp("onnx")
    export_run(run, out / "fp32")
    export_run(run, out / "int8", int8=True)
    return run, out / "fp32", out / "int8", taxonomy


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory, tiny_model_dir):
    """A run whose three levels froze the embeddings and the first layer: the export has a shared bottom graph."""
    import yaml

    from callreason.dataset import encode_dataset
    from callreason.onnx_backend import export_run
    from callreason.params import settings_from_params
    from callreason.run import fit_levels, training_rows, write_run_files
    from callreason.taxonomy import Taxonomy
    from tests.conftest import SMALL_TAXONOMY

    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    params["epochs"] = 1
    params["model"].update({"base": str(tiny_model_dir), "max_length": 32, "pooling": "mean"})
    params["train"].update({"frozen_layers": 1, "batch_size": 8, "bf16": False})  # ONNX is float32: compare like with like
    taxonomy = Taxonomy.from_dict(SMALL_TAXONOMY)
    data, _ = encode_dataset(make_labeled_rows(80, seed=3), taxonomy, 0.2, 0.15, 0, 1)
    root = tmp_path_factory.mktemp("frozen")
    settings = settings_from_params(params)
    fit_levels(training_rows(data, ("train",)), training_rows(data, ("val",)), taxonomy, settings, root / "run",
               root / "scratch")
    write_run_files(root / "run", taxonomy, settings, {"level_1": 1.2, "level_2": 0.8, "level_3": 1.1})
    export_run(root / "run", root / "onnx")
    return root / "run", root / "onnx"


def test_a_shared_bottom_is_exported_once_and_gives_the_pytorch_logits(frozen_run):
    run, onnx = frozen_run
    texts = make_labeled_rows(40, seed=5)["summary"].tolist() + ["a", "x " * 200]
    torch_predictor, onnx_predictor = load_predictor(run), load_predictor(onnx)
    depth = json.loads((onnx / "metadata.json").read_text())["onnx"]["shared_bottom_layers"]
    assert depth == torch_predictor.shared_depth >= 1  # at least the frozen layer (more if training kept the probe)
    assert (onnx / "shared_bottom.onnx").exists() and onnx_predictor.bottom is not None
    for a, b in zip(torch_predictor.level_logits(texts), onnx_predictor.level_logits(texts)):
        assert np.abs(a - b).max() < 1e-4
    ids = [f"c{i}" for i in range(len(texts))]
    assert onnx_predictor.predict_frame(ids, texts)[list(LEVELS)].equals(
        torch_predictor.predict_frame(ids, texts)[list(LEVELS)])


def test_onnx_gives_the_pytorch_paths_and_logits_within_float_error(exported):
    run, fp32, _, _ = exported
    texts = make_labeled_rows(40, seed=5)["summary"].tolist() + ["a", "x " * 200]  # a 1-word and a truncated text
    torch_predictor, onnx_predictor = load_predictor(run), load_predictor(fp32)
    assert isinstance(onnx_predictor, OnnxPredictor) and not isinstance(torch_predictor, OnnxPredictor)
    assert onnx_predictor.temperatures == torch_predictor.temperatures
    for a, b in zip(torch_predictor.level_logits(texts), onnx_predictor.level_logits(texts)):
        assert np.abs(a - b).max() < 1e-4
    ids = [f"c{i}" for i in range(len(texts))]
    expected, got = torch_predictor.predict_frame(ids, texts), onnx_predictor.predict_frame(ids, texts)
    assert got[list(LEVELS)].equals(expected[list(LEVELS)])
    np.testing.assert_allclose(got["path_prob"], expected["path_prob"], atol=1e-5)


def test_the_export_is_a_complete_folder_without_the_pytorch_weights(exported):
    run, fp32, int8, _ = exported
    source = {p.relative_to(run) for p in run.rglob("*") if p.is_file()}
    from callreason.onnx_backend import WEIGHT_FILES

    weights = {p for p in source if p.name in WEIGHT_FILES}  # the IDF token weights too (the default for MiniLM-like)
    assert len(weights) == 9 and any(p.name == "lexical.json" for p in source)
    for folder in (fp32, int8):
        written = {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}
        shared = json.loads((folder / "metadata.json").read_text())["onnx"]["shared_bottom_layers"] > 0
        assert written == ((source - weights) | {Path(level) / "model.onnx" for level in LEVELS}
                           | ({Path("shared_bottom.onnx")} if shared else set()))
        for level in LEVELS:
            assert (folder / level / "model.onnx").stat().st_size > 0
    assert sum(p.stat().st_size for p in int8.rglob("*.onnx")) < sum(p.stat().st_size for p in fp32.rglob("*.onnx"))


def test_int8_predicts_valid_paths_close_to_float(exported):
    run, _, int8, taxonomy = exported
    texts = make_labeled_rows(30, seed=6)["summary"].tolist()
    ids = [f"c{i}" for i in range(len(texts))]
    frame = load_predictor(int8).predict_frame(ids, texts)
    assert all(taxonomy.is_valid_path(*row) for row in frame[list(LEVELS)].itertuples(index=False))
    reference = HierarchicalPredictor.load(run).predict_frame(ids, texts)
    assert (frame["level_3"] == reference["level_3"]).mean() >= 0.8


def test_callreason_export_and_predict_on_the_export(trained_run, exported, tmp_path):
    run, fp32, _, _ = exported
    new = make_labeled_rows(12, seed=8)[["call_id", "summary"]]
    new.to_parquet(tmp_path / "new.parquet", index=False)
    code, out, err = run_entry_point(("callreason", "export", "--format", "onnx", "--models", str(run), "--output",
                                      "served"), tmp_path)
    assert code == 0, err
    assert "export: wrote served/ (ONNX: " in out and "level_3" in out
    code, out, err = run_entry_point(("callreason", "predict", "--models", "served", "--input", "new.parquet",
                                      "--output", "out.parquet", "--backend", "onnx"), tmp_path)
    assert code == 0, err
    written = pd.read_parquet(tmp_path / "out.parquet")
    assert list(written.columns) == list(PREDICTION_COLUMNS) and len(written) == 12
    expected = HierarchicalPredictor.load(run).predict_frame(new["call_id"].tolist(), new["summary"].tolist())
    assert written[list(LEVELS)].equals(expected[list(LEVELS)])


def test_export_refuses_a_folder_that_is_not_an_export_and_touches_nothing(trained_run, tmp_path):
    from callreason.onnx_backend import export_run

    run, _ = trained_run
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "calls.parquet").write_bytes(b"user data")
    before = tree_digest(tmp_path)
    with pytest.raises(InputError, match="not an ONNX export; give a new folder"):
        export_run(run, tmp_path / "data")
    with pytest.raises(InputError, match="lies inside the input"):
        export_run(run, run / "onnx")
    assert tree_digest(tmp_path) == before


def test_the_backend_must_match_the_folder(trained_run, exported):
    run, fp32, _, _ = exported
    with pytest.raises(InputError, match="--backend onnx needs an ONNX export"):
        load_predictor(run, backend="onnx")
    with pytest.raises(InputError, match="holds ONNX models only"):
        load_predictor(fp32, backend="torch")


@pytest.mark.parametrize("which", ["trained", "frozen"])
def test_levels_reading_long_texts_in_windows_export_and_give_the_pytorch_logits(trained_run, frozen_run, tmp_path,
                                                                                  which):
    """The same weights read up to 3 windows of 32 tokens (classifier.json max_windows): the ONNX graphs (with and
    without a shared bottom) pool each text over its windows as PyTorch does."""
    import shutil

    from callreason.onnx_backend import export_run

    run = trained_run[0] if which == "trained" else frozen_run[0]
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    for level in LEVELS:
        config = copy / level / "classifier.json"
        config.write_text(config.read_text().replace('"max_windows": 1', '"max_windows": 3'))
    export_run(copy, tmp_path / "onnx")
    rows = make_labeled_rows(30, seed=6)["summary"].tolist()
    texts = [" ".join(rows[i:i + 8]) for i in range(0, 30, 3)] + rows[:5]  # 2-3 windows each, then 1
    torch_predictor, onnx_predictor = load_predictor(copy), load_predictor(tmp_path / "onnx")
    assert torch_predictor.models[0][0].classifier_config.max_windows == 3
    original = load_predictor(run).level_logits(texts)
    for a, b, before in zip(torch_predictor.level_logits(texts), onnx_predictor.level_logits(texts), original):
        assert np.abs(a - b).max() < 1e-4
        assert np.abs(a[:10] - before[:10]).max() > 1e-3 and np.abs(a[10:] - before[10:]).max() < 1e-5


@pytest.mark.parametrize("which", ["trained", "frozen"])
def test_levels_weighing_tokens_by_idf_export_and_give_the_pytorch_logits(trained_run, frozen_run, tmp_path, which):
    """The same weights with IDF token weights in the pooling (classifier.json token_weighting, the weights file):
    the ONNX graphs, the one after a shared bottom included (it takes the token ids too), pool as PyTorch does."""
    import shutil

    from safetensors.torch import save_file

    from callreason.modeling import TOKEN_WEIGHTS_FILE, token_idf, tokenize
    from callreason.onnx_backend import export_run

    run = trained_run[0] if which == "trained" else frozen_run[0]
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    torch_before = load_predictor(run)
    tokenizer = torch_before.models[0][1]
    texts = make_labeled_rows(30, seed=6)["summary"].tolist()
    weights = token_idf(tokenize(tokenizer, texts[:10], 32), len(tokenizer))
    for level in LEVELS:
        config = copy / level / "classifier.json"
        config.write_text(config.read_text().replace('"token_weighting": "none"', '"token_weighting": "idf"'))
        save_file({"token_weights": weights}, str(copy / level / TOKEN_WEIGHTS_FILE))
    export_run(copy, tmp_path / "onnx")
    assert not (tmp_path / "onnx" / "level_1" / TOKEN_WEIGHTS_FILE).exists()  # the graph holds them
    torch_predictor, onnx_predictor = load_predictor(copy), load_predictor(tmp_path / "onnx")
    assert torch_predictor.models[0][0].token_weights is not None
    for a, b, before in zip(torch_predictor.level_logits(texts), onnx_predictor.level_logits(texts),
                            torch_before.level_logits(texts)):
        assert np.abs(a - b).max() < 1e-4
        assert np.abs(a - before).max() > 1e-3
