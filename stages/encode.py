"""encode: label ids from the taxonomy and the call_id split."""

from callreason.dataset import encode_dataset
from callreason.errors import run_stage
from callreason.io import read_parquet, write_json, write_parquet
from callreason.params import load_settings
from callreason.taxonomy import Taxonomy

DATASET = "data/prepared/dataset.parquet"
REPORT = "reports/encode.json"


def main() -> None:
    settings = load_settings()
    taxonomy = Taxonomy.load(settings.data.taxonomy)
    split = settings.split
    dataset, report = encode_dataset(
        read_parquet("data/filtered.parquet", "filtered data", "run `dvc repro filter` first"), taxonomy,
        split.test_fraction, split.val_fraction, settings.seed, split.min_rows_per_class,
    )
    write_parquet(dataset, DATASET)
    write_json(report, REPORT)
    rows = report["rows"]
    print(f"encode: {len(dataset)} rows -> train {rows['train']}, val {rows['val']}, test {rows['test']}, "
          f"reserved {rows['reserved']} (test rows of {len(report['level_3_too_small_to_test'])} level_3 classes with "
          f"fewer than {split.min_rows_per_class} rows); {len(report['level_3_without_rows'])} level_3 classes "
          f"without rows; wrote {DATASET}")


if __name__ == "__main__":
    run_stage("encode", main)
