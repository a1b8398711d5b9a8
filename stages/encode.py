"""encode: label ids from the taxonomy and the call_id split."""

from callreason.errors import run_stage
from callreason.io import read_parquet, write_json, write_parquet
from callreason.params import load_settings
from callreason.pipeline.encode import encode
from callreason.taxonomy import Taxonomy

FILTERED, DATASET = "data/filtered.parquet", "data/prepared/dataset.parquet"
REPORT = "reports/encode.json"


def main() -> None:
    settings = load_settings()
    taxonomy = Taxonomy.load(settings.data.taxonomy)
    split = settings.split
    dataset, report = encode(read_parquet(FILTERED, "filtered data", "run `dvc repro filter` first"), taxonomy, settings)
    write_parquet(dataset, DATASET)
    write_json(report, REPORT)
    rows = report["rows"]
    print(f"encode: {len(dataset)} rows -> train {rows['train']}, val {rows['val']}, test {rows['test']}, "
          f"reserved {rows['reserved']} (test rows of {len(report['level_3_too_small_to_test'])} level_3 classes with "
          f"fewer than {split.min_rows_per_class} rows); {len(report['level_3_without_rows'])} level_3 classes "
          f"without rows; wrote {DATASET}")


if __name__ == "__main__":
    run_stage("encode", main)
