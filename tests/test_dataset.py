import pandas as pd

from callreason.dataset import DATASET_COLUMNS, encode_dataset
from callreason.run_folder import RunFolder
from callreason.taxonomy import Taxonomy
from tests.conftest import SMALL_TAXONOMY, make_labeled_rows


def test_label_ids_come_from_the_taxonomy_not_the_data(small_taxonomy):
    rows = make_labeled_rows(40)
    only_some = rows[rows["level_3"].isin(["refund", "late_fee"])]
    full, _ = encode_dataset(rows, small_taxonomy, 0.2, 0.1, 0, 1)
    part, report = encode_dataset(only_some, small_taxonomy, 0.2, 0.1, 0, 1)
    merged = part.merge(full, on="call_id", suffixes=("_part", "_full"))
    for level in ("level_1", "level_2", "level_3"):
        assert (merged[f"{level}_id_part"] == merged[f"{level}_id_full"]).all()
        assert (merged[f"{level}_id_part"] == small_taxonomy.ids(level, merged[f"{level}_part"])).all()
    assert set(report["level_3_without_rows"]) == {"double_charge", "password_reset", "locked_out"}
    assert list(part.columns) == list(DATASET_COLUMNS)


def test_label_encoders_round_trip(tmp_path, small_taxonomy):
    run = RunFolder(tmp_path)
    run.write_label_encoders(small_taxonomy)
    for level in ("level_1", "level_2", "level_3"):
        assert pd.read_csv(run.label_encoders / f"{level}_classes.csv")["label"].tolist() == small_taxonomy.labels[level]
    assert run.read_taxonomy().labels == Taxonomy.from_dict(SMALL_TAXONOMY).labels


def test_taxonomy_ids_are_sorted_and_its_paths_are_exactly_the_files(small_taxonomy):
    """Label ids are positions in each level's sorted labels; the paths are the file's leaves, no more."""
    assert small_taxonomy.labels["level_1"] == ["access", "billing"]
    assert small_taxonomy.labels["level_3"] == ["double_charge", "late_fee", "locked_out", "password_reset", "refund"]
    from_file = {(l1, l2, l3) for l1, branch in SMALL_TAXONOMY.items() for l2, leaves in branch.items() for l3 in leaves}
    decoded = {tuple(small_taxonomy.labels[lv][i] for lv, i in zip(("level_1", "level_2", "level_3"), path))
               for path in small_taxonomy.paths.tolist()}
    assert decoded == from_file and len(small_taxonomy.paths) == len(from_file)
