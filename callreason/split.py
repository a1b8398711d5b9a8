"""Deterministic train/val/test assignment by call_id: appending rows never moves an existing row."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

SIDES = ("train", "val", "test", "reserved")
"""``reserved``: a test-hashed row of a class too small to be measured. The held-out run neither trains on
it nor scores it; the refit trains on it; it joins ``test`` once its class has enough rows."""


def call_id_unit_interval(call_ids: pd.Series, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per call_id, from SHA-256 of ``"{seed}:{call_id}"``."""
    return np.array(
        [int.from_bytes(hashlib.sha256(f"{seed}:{cid}".encode()).digest()[:8], "big") / 2**64 for cid in call_ids],
        dtype=np.float64,
    )


def assign_split(
    call_ids: pd.Series,
    strata: pd.Series,
    test_fraction: float,
    val_fraction: float,
    seed: int,
    min_rows_per_class: int,
) -> np.ndarray:
    """``"train"``, ``"val"``, ``"test"`` or ``"reserved"`` per row.

    A row's side depends only on its call_id and ``seed``: ``u < test_fraction`` is test, the next
    ``val_fraction`` of the remaining interval is validation (carved from train, never from test), the
    rest train; every class gets the same expected test share. A class (``strata``) with fewer than
    ``min_rows_per_class`` rows cannot be measured, so its test-hashed rows are ``reserved`` instead of
    test: never trained on by the held-out run, they become test rows when the class grows. So appending
    rows never moves a row between train, val and test: the only change is reserved -> test.
    """
    if not 0 < test_fraction < 1 or not 0 <= val_fraction < 1:
        raise ValueError("test_fraction must be in (0, 1) and val_fraction in [0, 1)")
    u = call_id_unit_interval(call_ids, seed)
    side = np.where(u < test_fraction, "test",
                    np.where(u < test_fraction + val_fraction * (1 - test_fraction), "val", "train")).astype(object)
    class_sizes = strata.map(strata.value_counts()).to_numpy()
    side[(class_sizes < min_rows_per_class) & (side == "test")] = "reserved"
    return side
