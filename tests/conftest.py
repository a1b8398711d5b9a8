"""Shared fixtures: a tiny randomly initialised BERT with its own tokenizer, and a small dataset."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from callreason.taxonomy import Taxonomy

WORDS = ("card bill payment refund order delivery late lost stolen password reset login plan upgrade cancel "
         "charge fee twice wrong address router internet slow outage agent customer called about").split()

SMALL_TAXONOMY = {"billing": {"payments": ["refund", "double_charge"], "fees": ["late_fee"]},
                  "access": {"login": ["password_reset", "locked_out"]}}
LEAF_WORDS = {"refund": "refund order", "double_charge": "charge twice", "late_fee": "late fee bill",
              "password_reset": "password reset", "locked_out": "login lost"}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 1-layer, 32-wide BERT and WordPiece tokenizer saved as a local Hugging Face folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *"abcdefghijklmnopqrstuvwxyz"]
    BertTokenizer(vocab={word: i for i, word in enumerate(vocab)}).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture()
def small_taxonomy() -> Taxonomy:
    return Taxonomy.from_dict(SMALL_TAXONOMY)


def make_labeled_rows(n: int, seed: int = 0) -> pd.DataFrame:
    """Rows in the input schema whose summaries carry their leaf's words (learnable by a tiny model)."""
    rng = np.random.default_rng(seed)
    taxonomy = Taxonomy.from_dict(SMALL_TAXONOMY)
    leaves = taxonomy.labels["level_3"]
    rows = []
    for i in range(n):
        leaf = leaves[i % len(leaves)]
        filler = " ".join(rng.choice(WORDS[-4:], size=3))
        l1, l2, l3 = taxonomy.path_of_leaf(leaf)
        rows.append({"call_id": f"C{i:04d}", "summary": f"{filler} {LEAF_WORDS[leaf]} {filler}",
                     "level_1": l1, "level_2": l2, "level_3": l3,
                     "confidence": float(rng.choice([0.6, 0.8, 0.9, 0.95]))})
    return pd.DataFrame(rows)


@pytest.fixture()
def tiny_params(tiny_model_dir) -> dict:
    """params.yaml contents pointing at the tiny model, fast settings."""
    import yaml

    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    params["epochs"] = 2
    params["model"].update({"base": str(tiny_model_dir), "max_length": 32, "pooling": "mean"})
    params["train"].update({"frozen_layers": 0, "batch_size": 8})
    return params


def run_entry_point(command: tuple[str, ...], cwd: Path) -> tuple[int, str, str]:
    """Run ``python -m MODULE ARGS`` (or the ``callreason`` console script) in this process, in ``cwd``;
    returns (exit code, stdout, stderr). An exception that escapes is what the user would see as a traceback:
    the test fails with it."""
    out, err = io.StringIO(), io.StringIO()
    module, args = command[0], list(command[1:])
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    code = 0
    try:
        os.chdir(cwd)
        sys.argv = [module, *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                if module == "callreason":
                    from callreason.cli import main

                    main(args)
                else:
                    runpy.run_module(module, run_name="__main__", alter_sys=True)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
    return code, out.getvalue(), err.getvalue()


def tree_digest(root: Path) -> dict[str, str]:
    """md5 of every file under ``root`` (bytecode caches aside), by relative path."""
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="session")
def small_project(tmp_path_factory, tiny_model_dir) -> Path:
    """A small working project: inputs, the outputs of filter and encode, a held-out and a final run folder
    (tiny untrained models), and new summaries to predict."""
    import json
    import shutil

    import yaml

    from callreason.io import write_json
    from callreason.modeling import build_classifier, save_classifier
    from callreason.params import settings_from_params
    from callreason.pseudo_labels import empty_pseudo_labels
    from callreason.run import write_run_files
    from callreason.taxonomy import LEVELS, Taxonomy

    root = tmp_path_factory.mktemp("project")
    shutil.copy(Path(__file__).parents[1] / "dvc.yaml", root / "dvc.yaml")
    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    params["model"].update({"base": str(tiny_model_dir), "max_length": 32, "pooling": "mean"})
    params["train"].update({"frozen_layers": 0, "batch_size": 8})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "taxonomy").mkdir()
    (root / "taxonomy/taxonomy.json").write_text(json.dumps(SMALL_TAXONOMY, indent=2))
    (root / "data").mkdir()
    make_labeled_rows(60).to_parquet(root / "data/phase2_labeled.parquet", index=False)
    pool = make_labeled_rows(30, seed=3)
    pool = pool.assign(call_id=[f"U{i:04d}" for i in range(30)])[["call_id", "summary"]]
    pool.to_parquet(root / "data/unlabeled_summaries.parquet")
    pool.head(10).assign(call_id=[f"N{i:04d}" for i in range(10)]).to_parquet(root / "data/new_calls.parquet")
    for module in ("stages.filter", "stages.encode"):
        code, _, err = run_entry_point((module,), root)
        assert code == 0, err
    settings = settings_from_params(params)
    taxonomy = Taxonomy.from_dict(SMALL_TAXONOMY)
    for run in ("heldout", "final"):
        for level in LEVELS:
            model, tokenizer = build_classifier(str(tiny_model_dir), taxonomy.labels[level], pooling="mean",
                                                max_length=32, level=level)
            save_classifier(model, tokenizer, root / "models" / run / level)
        write_run_files(root / "models" / run, taxonomy, settings, {level: 1.0 for level in LEVELS}, run=run)
    write_json({"promoted": False}, root / "models/promotion.json")
    empty_pseudo_labels().to_parquet(root / "data/promoted_pseudo_labels.parquet", index=False)
    return root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_model_dir):
    """A complete run folder (three levels, label encoders, temperatures, metadata) trained on 80 rows with the tiny
    BERT, and its taxonomy."""
    import yaml

    from callreason.dataset import encode_dataset
    from callreason.params import settings_from_params
    from callreason.run import fit_levels, training_rows, write_run_files

    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    params["epochs"] = 1
    params["model"].update({"base": str(tiny_model_dir), "max_length": 32, "pooling": "mean"})
    # float32 on every CPU: the parity checks on this run (ONNX, Ray) compare float32 with float32
    params["train"].update({"frozen_layers": 0, "batch_size": 8, "bf16": False})
    settings = settings_from_params(params)
    taxonomy = Taxonomy.from_dict(SMALL_TAXONOMY)
    data, _ = encode_dataset(make_labeled_rows(80), taxonomy, 0.2, 0.15, 0, 1)
    root = tmp_path_factory.mktemp("run")
    fit_levels(training_rows(data, ("train",)), training_rows(data, ("val",)), taxonomy, settings, root / "run",
               root / "scratch")
    write_run_files(root / "run", taxonomy, settings, {"level_1": 0.9, "level_2": 1.1, "level_3": 1.3})
    return root / "run", taxonomy
