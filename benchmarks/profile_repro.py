"""Where the time of `dvc repro` goes: every stage, and the phases inside the training stages.

    python -m benchmarks.profile_repro [--project .] [--force] [--out reports/profile.json]
    python -m benchmarks.profile_repro --compare BEFORE.json AFTER.json   # two stored profiles side by side

Runs the stages of ``dvc.yaml`` one at a time in dependency order (``dvc repro --single-item``; with
``--force`` every stage runs, as on a fresh clone), timing each, then reads the phases the stages record:
``seconds`` of each level's training (``load``, ``tokenize``, ``frozen_bottom``, ``probe``, ``fine_tune``,
``companions``, ``save``) in ``reports/train/level_N.json``, ``reports/retrain_fit.json`` and
``reports/refit.json``, and the retrain stage's ``score_pool`` / ``train`` / ``evaluate``. Prints a table and
writes the profile as JSON (``--out``). Stages run with the project's params.yaml: to profile without bf16
on a CPU that has it, set ``train.bf16: false`` there first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

PHASES = ("load", "tokenize", "frozen_bottom", "probe", "fine_tune", "companions", "save")
TRAINING_REPORTS = {"train_l1": ("reports/train/level_1.json", None), "train_l2": ("reports/train/level_2.json", None),
                    "train_l3": ("reports/train/level_3.json", None), "retrain": ("reports/retrain_fit.json", "levels"),
                    "refit": ("reports/refit.json", "levels")}


def stage_order(dvc_yaml: Path) -> list[str]:
    """The stages of ``dvc_yaml`` in an order where each runs after the stages whose outputs it depends on."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]

    def paths(entries: list) -> list[str]:
        return [e if isinstance(e, str) else next(iter(e)) for e in entries or []]

    outs = {name: paths(s.get("outs")) + paths(s.get("metrics")) + paths(s.get("plots")) for name, s in stages.items()}
    needs = {name: {other for other in stages for dep in paths(s.get("deps")) for out in outs[other]
                    if other != name and (dep == out or dep.startswith(out.rstrip("/") + "/")
                                          or out.startswith(dep.rstrip("/") + "/"))}
             for name, s in stages.items()}
    order: list[str] = []
    while len(order) < len(stages):
        ready = [name for name in stages if name not in order and needs[name] <= set(order)]
        if not ready:
            raise SystemExit(f"{dvc_yaml}: the stages' dependencies form a circle")
        order.append(ready[0])
    return order


def level_phases(report: dict[str, Any], key: str | None) -> dict[str, dict[str, float]]:
    """``{level: {phase: seconds}}`` from a training report (one level's, or a ``levels`` mapping)."""
    if key is None:
        return {report["level"]: report.get("seconds", {})}
    return {level: fit.get("seconds", {}) for level, fit in report.get(key, {}).items()}


def cpu_facts() -> dict[str, Any]:
    """The CPU model, core count and whether it has native bf16 (what ``train.bf16: auto`` looks at)."""
    import torch

    from callreason.training import bf16_enabled

    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    return {"cpu": model, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "native_bf16": bf16_enabled("auto"), "cuda": torch.cuda.is_available()}


def profile(project: Path, force: bool) -> dict[str, Any]:
    """Run every stage of ``project`` once (see the module docstring) and return the profile."""
    rows, elapsed = [], 0.0
    for stage in stage_order(project / "dvc.yaml"):
        start = time.perf_counter()
        result = subprocess.run(["dvc", "repro", "--single-item", *(["--force"] if force else []), stage],
                                cwd=project, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
            raise SystemExit(f"profile_repro: `dvc repro --single-item {stage}` failed (exit {result.returncode})")
        elapsed += seconds
        row: dict[str, Any] = {"stage": stage, "seconds": round(seconds, 1), "cumulative_seconds": round(elapsed, 1)}
        if stage in TRAINING_REPORTS:
            path, key = TRAINING_REPORTS[stage]
            report = json.loads((project / path).read_text())
            row["levels"] = level_phases(report, key)
            if "seconds" in report and key is not None:
                row["phases"] = report["seconds"]
        rows.append(row)
        print(f"{stage}: {seconds:.1f} s", flush=True)
    training = {phase: round(sum(phases.get(phase, 0.0) for row in rows for phases in row.get("levels", {}).values()),
                             1) for phase in PHASES}
    first_score = next((row["cumulative_seconds"] for row in rows if row["stage"] == "evaluate"), None)
    return {"machine": cpu_facts(), "forced": force, "total_seconds": round(elapsed, 1),
            "seconds_to_first_heldout_score": first_score, "training_phases_seconds": training, "stages": rows}


def markdown(result: dict[str, Any]) -> str:
    """The profile as two tables: the stages, and the phases of every level's training per stage."""
    machine = result["machine"]
    lines = [f"`dvc repro` profile: {machine['cpu']}, {machine['cores']} cores, native bf16 "
             f"{'yes' if machine['native_bf16'] else 'no'}; total {result['total_seconds'] / 60:.1f} min, "
             f"first held-out score after {(result['seconds_to_first_heldout_score'] or 0) / 60:.1f} min", "",
             "| stage | seconds | share | " + " | ".join(PHASES) + " |", "|---|---|---|" + "---|" * len(PHASES)]
    for row in result["stages"]:
        levels = row.get("levels", {})
        cells = [f"{sum(p.get(phase, 0.0) for p in levels.values()):.0f}" if levels else "" for phase in PHASES]
        share = row["seconds"] / result["total_seconds"] if result["total_seconds"] else 0.0
        lines.append(f"| {row['stage']} | {row['seconds']:.0f} | {share:.0%} | " + " | ".join(cells) + " |")
    total = result["training_phases_seconds"]
    lines.append("| all training | | | " + " | ".join(f"{total[phase]:.0f}" for phase in PHASES) + " |")
    return "\n".join(lines)


def comparison(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Two profiles side by side: seconds per stage, to the first held-out score and in all, and the ratio
    before / after (how many times faster; compare only profiles measured on one machine)."""
    def ratio(old: float | None, new: float | None) -> str:
        return f"{old / new:.2f}x" if old and new else ""

    def row(name: str, old: float | None, new: float | None) -> str:
        cell = lambda value: "" if value is None else f"{value:.0f}"  # noqa: E731
        return f"| {name} | {cell(old)} | {cell(new)} | {ratio(old, new)} |"

    seconds = lambda result: {r["stage"]: r["seconds"] for r in result["stages"]}  # noqa: E731
    old, new = seconds(before), seconds(after)
    lines = [f"before: {before['machine']['cpu']}, native bf16 {'yes' if before['machine']['native_bf16'] else 'no'}; "
             f"after: {after['machine']['cpu']}, native bf16 {'yes' if after['machine']['native_bf16'] else 'no'}", "",
             "| stage | before s | after s | before / after |", "|---|---|---|---|"]
    lines += [row(stage, old.get(stage), new.get(stage)) for stage in dict.fromkeys([*old, *new])]
    for phase in PHASES:
        lines.append(row(f"training: {phase}", before["training_phases_seconds"].get(phase),
                         after["training_phases_seconds"].get(phase)))
    lines.append(row("**first held-out score**", before["seconds_to_first_heldout_score"],
                     after["seconds_to_first_heldout_score"]))
    lines.append(row("**whole run**", before["total_seconds"], after["total_seconds"]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=Path("."))
    parser.add_argument("--force", action="store_true", help="run every stage, as on a fresh clone")
    parser.add_argument("--out", type=Path, default=Path("reports/profile.json"))
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"),
                        help="print two stored profiles side by side and stop (nothing runs)")
    args = parser.parse_args()
    if args.compare:
        before, after = (json.loads(path.read_text()) for path in args.compare)
        print(comparison(before, after))
        return
    result = profile(args.project.resolve(), args.force)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
