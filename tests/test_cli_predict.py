"""`callreason predict` itself (argument parsing, checks, chunked reading, the written file) on a run folder
trained here with the tiny BERT: what it writes is what the predictor computes, one valid row per call."""

from __future__ import annotations

import numpy as np
import pandas as pd

from callreason.predict import PREDICTION_COLUMNS, HierarchicalPredictor
from callreason.taxonomy import LEVELS
from tests.conftest import make_labeled_rows, run_entry_point


def test_callreason_predict_writes_what_the_predictor_computes(trained_run, tmp_path):
    run, taxonomy = trained_run
    new = make_labeled_rows(30, seed=9)[["call_id", "summary"]]
    new = pd.concat([new, new.head(3)], ignore_index=True)  # three calls sent twice
    new.to_parquet(tmp_path / "new.parquet", index=False)
    code, out, err = run_entry_point(("callreason", "predict", "--input", "new.parquet", "--output", "out.parquet",
                                      "--models", str(run), "--chunk-rows", "7"), tmp_path)
    assert code == 0, err
    assert ("read 33 rows from new.parquet, wrote 30 predictions to out.parquet; "
            "dropped 3 (3 call_id already predicted in an earlier chunk)") in out
    written = pd.read_parquet(tmp_path / "out.parquet")
    assert list(written.columns) == list(PREDICTION_COLUMNS)
    assert written["call_id"].tolist() == new["call_id"].head(30).tolist()
    assert all(taxonomy.is_valid_path(*row) for row in written[list(LEVELS)].itertuples(index=False))
    predictor = HierarchicalPredictor.load(run)
    assert predictor.temperatures == [0.9, 1.1, 1.3]
    expected = predictor.predict_frame(new["call_id"].head(30).tolist(), new["summary"].head(30).tolist())
    assert written[list(LEVELS)].equals(expected[list(LEVELS)])
    np.testing.assert_allclose(written["path_prob"], expected["path_prob"], atol=1e-5)
    assert (written["path_prob"] <= written[[f"{lv}_prob" for lv in LEVELS]].min(axis=1) + 1e-6).all()
