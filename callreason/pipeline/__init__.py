"""The pipeline, one plain function per stage, called by the stage scripts and the benchmarks alike."""
