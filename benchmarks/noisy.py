"""Noisy-label benchmark: the pipeline as a user runs it, scored on clean gold rows it never saw.

    python -m benchmarks.noisy                                   # every data set, 3 draws, today vs defaults
    python -m benchmarks.noisy --datasets banking77-noisy --draws 1 --config lever:train.loss=gce
    python -m benchmarks.noisy --levels level_3 --config a:filter.min_confidence=0.5,train.confidence_weighting=true
    python -m benchmarks.noisy --datasets banking77-noisy --config defaults: --peers seed-recipe setfit
    python -m benchmarks.noisy --datasets banking77-noisy --no-pipeline --peers seed-recipe-lr1e-4 --out FILE

Each draw builds what a user has: a labeled file (the *whole* of it goes through ``filter`` and the
pipeline), a taxonomy and an unlabeled pool; and, hidden from the pipeline, gold rows outside the file
to score on:

* ``banking77-noisy``: a stratified 1,940-row draw of ``../shared/benchmarks/banking77/labeled.parquet``
  with LLM-style label noise (``benchmarks.label_noise``, 15 % of paths); scored on 1,500 other labeled
  rows with their clean labels;
* ``banking77-clean``: the same draw with its gold labels (confidence 1.0);
* ``banking77-skewed``: as noisy, but the class sizes of a real taxonomy: half of the rows in one level_1
  (``cards``), leaves inside each level_1 Zipf-sized (at least 4 rows); the external rows follow the same
  proportions (1,000 rows);
* ``banking77-skewed-small``: as skewed, a few hundred rows (Zipf shares of 300, every leaf at least 3: 380-430
  rows, half in cards, 3 of 4 leaves with 3-10 rows), the small skewed taxonomy a new team starts with;
* ``demo``: the demo generator with ``seed = draw`` (draw 0 is the committed demo; its LLM labels are
  ~10 % wrong); scored on half of its unlabeled pool against the generator's true labels;
* ``demo-long``: the same rows, labels and split as ``demo``, each summary a 200-600-word transcript with the
  reason stated once at a random place (``python -m callreason.demo --long``): what length alone costs.
* ``demo-skewed-small`` / ``demo-long-skewed-small``: a few hundred of the demo's (or demo-long's) labeled rows
  with their LLM labels, drawn by true leaf (:func:`demo_skewed_draw`: shares of 300 rows, half to the level_1
  with the most rows, every leaf at least 3: 340-360 rows, 43-44 % in that level_1, 3 of 4 of the 66 leaves
  with 3-10 rows); scored on 1,000 gold pool rows in the same proportions; a 1,000-row pool. The two share rows
  and labels, so they compare length alone on small skewed data.

Configurations (``--config name:key=value,...``; params.yaml plus overrides): each is trained as the
stages do (held-out run on the train split, choices on the validation slice; with all three levels, retrain
on the pool's confident pseudo-labels, promoted only if it beats the held-out run on the test split; then the
refit on every row that replays the choices) and the held-out and final runs are scored. Each draw also has
an unlabeled pool (BANKING77: 2,000 rows of its pool; demo: the other half of its pool). ``today`` is the
pipeline as it landed before the refit (params of commit c7c1343; the held-out models are what it
shipped). The TF-IDF + logistic regression baseline is trained on every row the configuration's filter keeps.
Results: one JSON line per (data set, draw, configuration) in ``--out``; a summary table (mean and
half-range over draws) is printed and written beside it as ``.md`` (``--summarize FILE`` redoes it for every line
of a file, e.g. after several runs appended to it). Configurations of a draw that differ only in
``pseudo_label.*`` share its held-out run (and the refit, when their retrain is not promoted). ``--peers``
adds the alternatives of :mod:`benchmarks.peers` (the seed recipe at the notebook's settings and at lr 1e-4,
SetFit, a class-balanced TF-IDF), trained on the rows params.yaml's filter keeps and scored on the same external
rows, each a row of the table with its seconds (``--no-pipeline``: the peers alone).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from benchmarks.common import ROOT, SHARED, append_jsonl, tfidf_lr
from benchmarks.label_noise import llm_label_noise
from benchmarks.peers import PEERS, SETFIT_STEPS, peer_label, peer_probs, setfit_available
from callreason.evaluation import headline_metrics
from callreason.hierarchy import joint_decode
from callreason.io import load_params, parse_yaml
from callreason.metrics import evaluation_metrics, level_scores
from callreason.modeling import load_classifier, predict_logits
from callreason.params import Settings, settings_from_params
from callreason.pipeline.encode import encode
from callreason.pipeline.evaluate import evaluate_heldout
from callreason.pipeline.filter import select_confident
from callreason.pipeline.refit import refit as run_refit
from callreason.pipeline.retrain import promotion_record
from callreason.pipeline.retrain import retrain as run_retrain
from callreason.pipeline.train import train_heldout
from callreason.predict import HierarchicalPredictor
from callreason.pseudo_labels import PSEUDO_COLUMNS, empty_pseudo_labels, unlabeled_pool
from callreason.run import training_rows, write_run_files
from callreason.run_folder import RunFolder
from callreason.taxonomy import LEVELS, Taxonomy
from callreason.validation import validate_labeled

DATASETS = ("banking77-noisy", "banking77-clean", "banking77-skewed", "banking77-skewed-small", "demo", "demo-long",
            "demo-skewed-small", "demo-long-skewed-small")
TODAY = {  # params.yaml as landed in c7c1343 (before the refit), for the settings this benchmark varies
    "filter.min_confidence": 0.75, "split.val_fraction": 0.1, "train.confidence_weighting": False,
    "train.early_stopping": True, "train.loss": "cross_entropy", "train.drop_suspect_labels": False,
    "train.class_balance": "none", "train.knn_weight": 0.0,
}


@dataclass
class Case:
    """One draw of one data set: what the user has, and the hidden gold rows to score on."""

    name: str
    draw: int
    labeled: pd.DataFrame   # the user's labeled file (LLM labels and confidences)
    taxonomy: Taxonomy
    external: pd.DataFrame  # call_id, summary, level_1..3 (gold), never seen by the pipeline
    wrong: set[str]         # call_ids of the labeled file whose label differs from the gold one
    pool: pd.DataFrame      # the unlabeled pool: call_id, summary, and its hidden gold level_1..3


def make_case(name: str, draw: int, rows: int = 1940, noise_rate: float = 0.15, external_rows: int = 1500,
              pool_rows: int = 2000) -> Case:
    """Build draw ``draw`` of data set ``name`` (see the module docstring)."""
    if name.startswith("demo"):
        from callreason.demo import generate_demo_data, make_taxonomy

        taxonomy = Taxonomy.from_dict(make_taxonomy())
        _, labeled, pool = generate_demo_data(seed=draw, return_gold=True, long=name.startswith("demo-long"))
        in_external = np.array([int(hashlib.sha256(f"{draw}:{c}".encode()).hexdigest(), 16) % 2 == 0
                                for c in pool["call_id"]])
        external, pool = pool[in_external].reset_index(drop=True), pool[~in_external].reset_index(drop=True)
        if name.endswith("skewed-small"):
            labeled, external = demo_skewed_draw(labeled, external, 300, 1000, draw)
            pool = pool.sample(n=min(1000, len(pool)), random_state=draw).reset_index(drop=True)
        gold = labeled[[f"gold_{lv}" for lv in LEVELS]].to_numpy()
        wrong = (labeled[list(LEVELS)].to_numpy() != gold).any(1)
        labeled = labeled.drop(columns=[f"gold_{lv}" for lv in LEVELS])
        return Case(name, draw, labeled, taxonomy, external, set(labeled.loc[wrong, "call_id"]), pool)
    folder = SHARED / "banking77"
    taxonomy = Taxonomy.load(folder / "taxonomy.json")
    everything = pd.read_parquet(folder / "labeled.parquet")
    pool = pd.read_parquet(folder / "unlabeled.parquet").merge(pd.read_parquet(folder / "unlabeled_gold.parquet")
                                                               .loc[:, ["call_id", *LEVELS]], on="call_id")
    pool = pool.sample(n=min(pool_rows, len(pool)), random_state=draw).reset_index(drop=True)
    if name == "banking77-skewed":
        drawn, external = skewed_draw(everything, rows, 1000, draw)
    elif name == "banking77-skewed-small":
        drawn, external = skewed_draw(everything, 300, 1000, draw, min_rows=3)
    else:
        drawn, rest = train_test_split(everything, train_size=rows, stratify=everything["level_3"], random_state=draw)
        external = rest.sample(n=min(external_rows, len(rest)), random_state=draw).reset_index(drop=True)
        drawn = drawn.reset_index(drop=True)
    if name == "banking77-clean":
        return Case(name, draw, drawn.assign(confidence=1.0), taxonomy, external, set(), pool)
    noisy, wrong = llm_label_noise(drawn, taxonomy, noise_rate, seed=draw)
    return Case(name, draw, noisy, taxonomy, external, set(noisy.loc[wrong, "call_id"]), pool)


def skewed_draw(frame: pd.DataFrame, rows: int, external_rows: int, seed: int,
                big_area: str = "cards", min_rows: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two disjoint samples with the same skewed class sizes: ``big_area`` holds half of the rows, the leaves
    inside each level_1 get Zipf weights (1/rank, ranks shuffled with ``seed``), every leaf at least
    ``min_rows`` rows."""
    rng = np.random.default_rng(seed)
    weights = {}
    for area, group in frame.groupby("level_1"):
        leaves = sorted(group["level_3"].unique())
        zipf = 1.0 / (rng.permutation(len(leaves)) + 1.0)
        share = 0.5 if area == big_area else 0.5 / (frame["level_1"].nunique() - 1)
        weights.update(dict(zip(leaves, share * zipf / zipf.sum())))
    drawn, external = [], []
    for leaf, group in frame.groupby("level_3"):
        group = group.sample(frac=1.0, random_state=seed)
        n_user = max(min_rows, int(round(weights[leaf] * rows)))
        n_ext = max(2, int(round(weights[leaf] * external_rows)))
        n_user = min(n_user, len(group) - n_ext)
        drawn.append(group.iloc[:n_user])
        external.append(group.iloc[n_user: n_user + n_ext])
    return (pd.concat(drawn).sample(frac=1.0, random_state=seed).reset_index(drop=True),
            pd.concat(external).reset_index(drop=True))


def demo_skewed_draw(labeled: pd.DataFrame, gold_rows: pd.DataFrame, rows: int, external_rows: int, seed: int,
                     min_rows: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A skewed sample of the demo's ``labeled`` rows (LLM labels kept) and of its ``gold_rows``, both by true
    leaf: the level_1 with the most rows holds half, the others the rest in equal parts, the leaves inside each
    in the demo's own (Zipf) proportions; every leaf at least ``min_rows`` labeled rows and 2 gold rows."""
    truth = labeled[[f"gold_{lv}" for lv in LEVELS]].set_axis(list(LEVELS), axis=1)
    area_rows = truth["level_1"].value_counts()
    area_share = {area: 0.5 if area == area_rows.index[0] else 0.5 / (len(area_rows) - 1) for area in area_rows.index}
    drawn, external = [], []
    for (area, leaf), count in truth.groupby(["level_1", "level_3"]).size().items():
        share = area_share[area] * count / area_rows[area]
        mine = labeled[truth["level_3"] == leaf].sample(frac=1.0, random_state=seed)
        theirs = gold_rows[gold_rows["level_3"] == leaf].sample(frac=1.0, random_state=seed)
        drawn.append(mine.iloc[:max(min_rows, int(round(share * rows)))])
        external.append(theirs.iloc[:max(2, int(round(share * external_rows)))])
    return (pd.concat(drawn).sample(frac=1.0, random_state=seed).reset_index(drop=True),
            pd.concat(external).reset_index(drop=True))


def apply_overrides(params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` with ``{"a.b": value}`` set (the key must exist, as with ``dvc exp run -S``)."""
    params = json.loads(json.dumps(params))
    for key, value in overrides.items():
        node = params
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        if leaf not in node:
            raise SystemExit(f"{key}: params.yaml has no such key")
        node[leaf] = value
    return params


def parse_config(text: str) -> tuple[str, dict[str, Any]]:
    """``name:a.b=1,c.d=x`` -> (``name``, ``{"a.b": 1, "c.d": "x"}``); values parsed as YAML."""
    name, _, assignments = text.partition(":")
    overrides = {}
    for item in filter(None, assignments.split(",")):
        key, _, value = item.partition("=")
        overrides[key.strip()] = parse_yaml(value)
    return name, overrides


def level_scores_of(true: pd.DataFrame, taxonomy: Taxonomy, level_probs: list[np.ndarray]) -> dict[str, Any]:
    """Per-level macro-F1/accuracy of the jointly decoded path and path accuracy against ``true``'s labels, and
    each level's macro-F1 under the other decodings (:func:`decoding_scores`)."""
    ids = np.stack([taxonomy.ids(lv, true[lv].tolist()) for lv in LEVELS], axis=1)
    metrics = evaluation_metrics(ids, level_probs, taxonomy)
    return {**{lv: {"macro_f1": metrics[lv]["macro_f1"], "accuracy": metrics[lv]["accuracy"]} for lv in LEVELS},
            "path_accuracy": metrics["path"]["accuracy"], "decodings": decoding_scores(ids, taxonomy, level_probs)}


def decoding_scores(true_ids: np.ndarray, taxonomy: Taxonomy, level_probs: list[np.ndarray]) -> dict[str, Any]:
    """Each level's macro-F1 when decoded otherwise than the shipped best path by ``p1 * p2 * p3``:

    * ``argmax``: each level's classifier alone (may give an invalid path);
    * ``leaf``: the best leaf by ``p3`` alone, levels 1-2 its parents (the level_1/2 classifiers unused);
    * ``marginal``: per level, the label with the most path posterior summed over the paths through it
      (the decision that maximises each level's expected accuracy, not the path's)."""
    paths = taxonomy.paths
    _, posterior = joint_decode(level_probs, paths)
    ones = [np.ones((len(true_ids), len(taxonomy.labels[lv]))) for lv in LEVELS[:-1]]
    leaf_ids = paths[joint_decode([*ones, level_probs[-1]], paths)[0]]
    out: dict[str, Any] = {"argmax": {}, "leaf": {}, "marginal": {}}
    for depth, level in enumerate(LEVELS):
        n = len(taxonomy.labels[level])
        marginal = np.zeros((len(true_ids), n))
        np.add.at(marginal.T, paths[:, depth], posterior.T)
        for name, predicted in (("argmax", np.asarray(level_probs[depth]).argmax(1)), ("leaf", leaf_ids[:, depth]),
                                ("marginal", marginal.argmax(1))):
            out[name][level] = round(level_scores(true_ids[:, depth], predicted, n)["macro_f1"], 4)
    return out


def one_level_scores(folder: Path, level: str, true: pd.DataFrame, taxonomy: Taxonomy) -> dict[str, Any]:
    """Macro-F1/accuracy of one level model's own argmax on ``true`` (screening: one level only)."""
    model, tokenizer = load_classifier(folder / level)
    predicted = predict_logits(model, tokenizer, true["summary"].tolist()).argmax(1)
    labels = taxonomy.ids(level, true[level].tolist())
    return {level: {"macro_f1": round(float(f1_score(labels, predicted, average="macro")), 4),
                    "accuracy": round(float(accuracy_score(labels, predicted)), 4)}}


def final_scores_of(run: RunFolder, levels: tuple[str, ...], case: Case) -> dict[str, Any]:
    """A completed run folder's scores on the case's external gold rows, with its own (rounded) temperatures,
    as ``predict`` and ``pseudo_label`` use it; one level alone: that model's argmax."""
    if levels != LEVELS:
        return one_level_scores(run.root, levels[0], case.external, case.taxonomy)
    predictor = HierarchicalPredictor.load(run.root, calibrated=True)
    return level_scores_of(case.external, case.taxonomy, predictor.level_probs(case.external["summary"].tolist()))


def filtered_dataset(case: Case, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The case's labeled file through ``filter`` and ``encode`` (:mod:`callreason.pipeline`): the rows the
    filter keeps, and the dataset (label ids, split)."""
    source = f"{case.name}-draw{case.draw}"
    checked, _ = validate_labeled(case.labeled, case.taxonomy, source, settings.data.max_summary_chars)
    kept, _ = select_confident(checked, checked.iloc[:0], settings, source)
    dataset, _ = encode(kept, case.taxonomy, settings, source)
    return kept, dataset


@dataclass
class HeldoutRun:
    """A draw's held-out run, trained and evaluated once for every configuration that differs from another only
    in what the held-out run does not read (``pseudo_label.*``): its folder, training summaries, suspects left
    out, evaluation and scores on the external rows, and the seconds it took; and once refit without a promoted
    retrain (the same final run for all those configurations), that refit's (scores, rows, wrong rows, seconds)."""

    folder: RunFolder
    fits: dict[str, dict]
    suspects: set[str]
    evaluation: Any
    scores: dict[str, Any]
    seconds: float
    unpromoted_final: tuple[dict[str, Any], int, int, float] | None = None


@dataclass
class HeldoutRuns:
    """A draw's held-out runs by :func:`heldout_key`, in folders under ``root`` (kept for the whole draw)."""

    root: Path
    runs: dict[str, HeldoutRun]


def heldout_key(settings: Settings) -> str:
    """What decides a held-out run: every setting but ``pseudo_label`` (read from retrain on)."""
    return repr(replace(settings, pseudo_label=None))


def train_and_evaluate_heldout(case: Case, settings: Settings, dataset: pd.DataFrame, folder: RunFolder,
                               scratch: Path, levels: tuple[str, ...]) -> HeldoutRun:
    """``train_l1/2/3`` then ``evaluate`` (all three levels) into ``folder``, scored on the external rows.
    One level alone (screening) skips evaluate and scores that model's argmax."""
    start = time.perf_counter()
    fits, suspects = train_heldout(dataset, case.taxonomy, settings, folder, scratch, levels=levels)
    seconds = time.perf_counter() - start
    if levels == LEVELS:
        evaluation, predictor = evaluate_heldout(dataset, case.taxonomy, settings, folder)
        temperature = evaluation.details["calibration"]["temperature"]
        scores = level_scores_of(case.external, case.taxonomy,
                                 predictor.level_probs(case.external["summary"].tolist()))
    else:  # screening: the argmax of one level, no temperatures
        evaluation, temperature = None, {level: 1.0 for level in LEVELS}
        scores = one_level_scores(folder.root, levels[0], case.external, case.taxonomy)
    write_run_files(folder.root, case.taxonomy, settings, temperature)
    return HeldoutRun(folder, fits, suspects, evaluation, scores, seconds)


def run_pipeline(case: Case, settings: Settings, work: Path, levels: tuple[str, ...],
                 refit: bool = True, retrain: bool = False, heldout_runs: HeldoutRuns | None = None,
                 ) -> dict[str, Any]:
    """The stages' own functions (:mod:`callreason.pipeline`) in memory: filter -> encode -> train -> evaluate
    [-> retrain, promoted only if better] -> refit, the held-out and final runs scored on the external rows.
    One level alone (screening) skips evaluate and retrain and scores that model's argmax. ``heldout_runs``:
    the draw's held-out runs, reused (or added to), so configurations that differ only in ``pseudo_label.*``
    train one held-out run, and one refit of it when their retrain is not promoted. ``refit_seconds`` is retrain
    and refit together."""
    taxonomy = case.taxonomy
    kept, dataset = filtered_dataset(case, settings)
    retrained, final = RunFolder(work / "retrained"), RunFolder(work / "final")
    runs = HeldoutRuns(work, {}) if heldout_runs is None else heldout_runs
    key = heldout_key(settings)
    if key not in runs.runs:
        runs.runs[key] = train_and_evaluate_heldout(case, settings, dataset,
                                                    RunFolder(runs.root / f"heldout-{len(runs.runs)}"),
                                                    work / "scratch", levels)
    held = runs.runs[key]
    heldout, fits, suspects, evaluation = held.folder, held.fits, held.suspects, held.evaluation
    heldout_scores, heldout_seconds = held.scores, held.seconds
    promotion, promoted_pseudo, decision = {"promoted": False}, empty_pseudo_labels(), None
    start = time.perf_counter()
    if retrain and evaluation is not None:
        pool, _ = unlabeled_pool(case.pool[["call_id", "summary"]], dataset, case.labeled, [], settings,
                                 (case.name, f"{case.name} pool"))
        train, val = training_rows(dataset, ("train",)), training_rows(dataset, ("val",))
        result = run_retrain(dataset, pool, taxonomy, settings, heldout,
                             headline_metrics(evaluation.details, len(train), len(val)), retrained, work / "scratch")
        promotion = promotion_record(result, retrained, settings)
        if promotion["promoted"]:
            promoted_pseudo = result.pseudo.loc[:, list(PSEUDO_COLUMNS)]
        truth = result.pseudo.merge(case.pool, on="call_id", suffixes=("", "_gold"))
        precision = float((truth["level_3"] == truth["level_3_gold"]).mean()) if len(truth) else None
        decision = {**result.decision, "pseudo_rows": len(result.pseudo),
                    "pseudo_precision_vs_gold": None if precision is None else round(precision, 4)}
    retrain_seconds = time.perf_counter() - start
    final_scores, final_rows, final_wrong, refit_only_seconds = None, 0, 0, 0.0
    if refit and not promotion["promoted"] and held.unpromoted_final is not None:
        final_scores, final_rows, final_wrong, refit_only_seconds = held.unpromoted_final
    elif refit:
        start = time.perf_counter()
        fitted = run_refit(dataset, taxonomy, settings, promotion, promoted_pseudo, heldout, final, work / "scratch",
                           levels=levels)
        write_run_files(final.root, taxonomy, settings, fitted.temperature)
        final_scores = final_scores_of(final, levels, case)
        final_rows = fitted.counts["gold_rows"] + fitted.counts["pseudo_rows"]
        final_wrong = int(dataset.loc[~dataset["call_id"].isin(fitted.suspects), "call_id"].isin(case.wrong).sum())
        refit_only_seconds = time.perf_counter() - start
        if not promotion["promoted"]:
            held.unpromoted_final = (final_scores, final_rows, final_wrong, refit_only_seconds)
    refit_seconds = retrain_seconds + refit_only_seconds
    return {
        "rows_kept": len(kept), "rows_heldout_train": fits[levels[0]]["train_rows"], "rows_final": final_rows,
        "heldout": heldout_scores, "final": final_scores,
        "kept_wrong_share": round(float(kept["call_id"].isin(case.wrong).mean()), 4),
        "final_wrong_share": round(final_wrong / final_rows, 4) if refit else None,
        "heldout_seconds": round(heldout_seconds, 1), "refit_seconds": round(refit_seconds, 1),
        "retrain": decision, "suspects_left_out": len(suspects),
        "choices": {lv: {k: fits[lv].get(k) for k in ("best_epoch", "lexical_weight", "best_val_macro_f1")}
                   for lv in levels},
    }


def baseline(case: Case, settings: Settings, levels: tuple[str, ...]) -> dict[str, Any]:
    """TF-IDF + logistic regression per level on every row the filter keeps, scored like the pipeline."""
    kept, _ = filtered_dataset(case, settings)
    for level in LEVELS:
        kept[f"{level}_id"] = case.taxonomy.ids(level, kept[level].tolist())
    start = time.perf_counter()
    probs = tfidf_lr(kept, case.external, case.taxonomy)
    seconds = time.perf_counter() - start
    scores = external_scores(case, levels, probs if levels == LEVELS else [probs[LEVELS.index(levels[0])]])
    return {"rows": len(kept), "scores": scores, "seconds": round(seconds, 1)}


def external_scores(case: Case, levels: tuple[str, ...], probs: list[np.ndarray]) -> dict[str, Any]:
    """Scores on the case's external rows of an approach's probabilities per level of ``levels``: all three
    decoded jointly as the pipeline does, or one level's argmax."""
    if levels == LEVELS:
        return level_scores_of(case.external, case.taxonomy, probs)
    labels = case.taxonomy.ids(levels[0], case.external[levels[0]].tolist())
    predicted = probs[0].argmax(1)
    return {levels[0]: {"macro_f1": round(float(f1_score(labels, predicted, average="macro")), 4),
                        "accuracy": round(float(accuracy_score(labels, predicted)), 4)}}


def peer_result(case: Case, name: str, settings: Settings, levels: tuple[str, ...], work: Path,
                setfit_steps: int) -> dict[str, Any]:
    """A peer (:mod:`benchmarks.peers`) trained on the rows the filter of ``settings`` keeps, scored on the case's
    external rows."""
    _, dataset = filtered_dataset(case, settings)
    probs, seconds = peer_probs(name, dataset, case.external, case.taxonomy, levels, settings.model.base, work,
                                seed=settings.seed, setfit_steps=setfit_steps)
    return {"peer": name, "approach": peer_label(name, setfit_steps), "rows": len(dataset),
            "scores": external_scores(case, levels, probs), "seconds": round(seconds, 1)}


def summary_table(results: list[dict[str, Any]], levels: tuple[str, ...]) -> str:
    """Markdown: per data set and configuration, the mean (± half-range over draws) of each score."""
    columns = [*(f"{lv} macro-F1" for lv in levels)] + (["path acc"] if levels == LEVELS else [])

    def values(scores: dict[str, Any]) -> list[float]:
        out = [scores[lv]["macro_f1"] for lv in levels]
        return out + ([scores["path_accuracy"]] if levels == LEVELS else [])

    rows: dict[tuple[str, str], list[list[float]]] = {}
    seconds: dict[tuple[str, str], list[float]] = {}
    for r in results:
        if r.get("peer"):  # benchmarks.peers: one approach, no runs
            rows.setdefault((r["dataset"], r["approach"]), []).append(values(r["scores"]))
            seconds.setdefault((r["dataset"], r["approach"]), []).append(r["seconds"])
            continue
        if r["config"] == "today":  # the held-out models are what it shipped
            entries = [(f"{r['config']}: shipped models", r["heldout"], r["heldout_seconds"] + r["refit_seconds"])]
        else:  # no final run with --no-refit
            entries = [] if r["final"] is None else [(f"{r['config']}: shipped models", r["final"],
                                                      r["heldout_seconds"] + r["refit_seconds"])]
            entries += [(f"{r['config']}: held-out run", r["heldout"], r["heldout_seconds"])]
        entries += [(f"TF-IDF + LR ({r['config']}'s filter)", r["baseline"]["scores"], r["baseline"]["seconds"])]
        for what, scores, secs in entries:
            rows.setdefault((r["dataset"], what), []).append(values(scores))
            seconds.setdefault((r["dataset"], what), []).append(secs)
    lines = ["| data set | approach | draws | " + " | ".join(columns) + " | seconds |",
             "|---|---|---|" + "---|" * (len(columns) + 1)]
    for (dataset, what), vals in rows.items():
        table = np.array(vals)
        cells = [f"{m:.3f} ± {h:.3f}" for m, h in zip(table.mean(0), (table.max(0) - table.min(0)) / 2)]
        lines.append(f"| {dataset} | {what} | {len(vals)} | " + " | ".join(cells)
                     + f" | {np.mean(seconds[(dataset, what)]):.0f} |")
    return "\n".join(lines) + "\n"


def decodings_table(results: list[dict[str, Any]]) -> str:
    """Markdown: per data set, configuration and run, each level's macro-F1 (mean ± half-range over draws) under
    the shipped joint decoding and the others of :func:`decoding_scores` (all three levels only)."""
    cells: dict[tuple[str, str, str], list[list[float]]] = {}
    for r in results:
        for run in ("heldout", "final"):
            scores = r.get(run)
            if not scores or "decodings" not in scores:
                continue
            decodings = {"joint (shipped)": {lv: scores[lv]["macro_f1"] for lv in LEVELS}, **scores["decodings"]}
            for name, values in decodings.items():
                cells.setdefault((r["dataset"], f"{r['config']}: {run}", name), []).append([values[lv] for lv in LEVELS])
    lines = ["| data set | run | decoding | draws | level_1 macro-F1 | level_2 macro-F1 | level_3 macro-F1 |",
             "|---|---|---|---|---|---|---|"]
    for (dataset, run, name), values in cells.items():
        table = np.array(values)
        spread = (table.max(0) - table.min(0)) / 2
        lines.append(f"| {dataset} | {run} | {name} | {len(values)} | "
                     + " | ".join(f"{m:.3f} ± {h:.3f}" for m, h in zip(table.mean(0), spread)) + " |")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--draws", type=int, default=3, help="draws 0..N-1 of each data set")
    parser.add_argument("--first-draw", type=int, default=0)
    parser.add_argument("--noise-rate", type=float, default=0.15, help="banking77-noisy: share of wrong paths")
    parser.add_argument("--levels", nargs="+", default=list(LEVELS), choices=LEVELS,
                        help="one level alone for quick screening (its own argmax is scored)")
    parser.add_argument("--no-retrain", action="store_true",
                        help="skip retrain (pseudo-labels, promoted only if better); it runs only with all three levels")
    parser.add_argument("--no-refit", action="store_true",
                        help="score the held-out run only (screening: no retrain, no refit)")
    parser.add_argument("--config", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                        help="a configuration to run (default: today and defaults)")
    parser.add_argument("--no-pipeline", action="store_true",
                        help="train only --peers (no configuration, no TF-IDF), e.g. to add a peer to earlier runs' file")
    parser.add_argument("--peers", nargs="+", default=[], choices=PEERS,
                        help="also train these alternatives on each draw (benchmarks/peers.py; setfit is optional)")
    parser.add_argument("--setfit-steps", type=int, default=SETFIT_STEPS,
                        help="SetFit's contrastive steps per level (batches of 16 pairs)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "noisy.jsonl")
    parser.add_argument("--summarize", type=Path, metavar="JSONL",
                        help="nothing runs: print the table of the results in this file (written beside it as .md)")
    args = parser.parse_args()
    if args.summarize:
        results = [json.loads(line) for line in args.summarize.read_text().splitlines() if line.strip()]
        table = summary_table(results, tuple(results[0]["levels"])) + "\n" + decodings_table(results)
        print(table)
        args.summarize.with_suffix(".md").write_text(table)
        return
    levels = tuple(lv for lv in LEVELS if lv in args.levels)
    if len(levels) not in (1, 3):
        raise SystemExit("--levels: one level, or all three")
    if args.no_pipeline and (args.config or not args.peers):
        raise SystemExit("--no-pipeline: give --peers and no --config")
    configs = [] if args.no_pipeline else [parse_config(c) for c in (args.config or ["today:", "defaults:"])]
    peers = list(dict.fromkeys(args.peers))
    if "setfit" in peers and not setfit_available():
        print("setfit: skipped, the package is not installed (`pip install setfit`: an optional benchmark dependency)",
              flush=True)
        peers.remove("setfit")
    base = load_params(ROOT / "params.yaml")
    peer_settings = settings_from_params(base)  # the peers train on the rows params.yaml's filter keeps
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    for dataset in args.datasets:
        if not dataset.startswith("demo") and not (SHARED / "banking77").exists():
            print(f"{dataset}: skipped, {SHARED / 'banking77'} not found", flush=True)
            continue
        for draw in range(args.first_draw, args.first_draw + args.draws):
            case = make_case(dataset, draw, noise_rate=args.noise_rate)
            with tempfile.TemporaryDirectory() as draw_work:
                heldout_runs = HeldoutRuns(Path(draw_work), {})  # shared by the draw's configurations
                for name, overrides in configs:
                    settings = settings_from_params(apply_overrides(base, {**(TODAY if name == "today" else {}),
                                                                           **overrides}))
                    with tempfile.TemporaryDirectory(dir=draw_work) as work:
                        result = run_pipeline(case, settings, Path(work), levels,
                                              refit=name != "today" and not args.no_refit,
                                              retrain=name != "today" and not args.no_retrain and not args.no_refit,
                                              heldout_runs=heldout_runs)
                    result.update(dataset=dataset, draw=draw, config=name, overrides=overrides, levels=list(levels),
                                  wrong_share=round(len(case.wrong) / len(case.labeled), 4),
                                  baseline=baseline(case, settings, levels))
                    results.append(result)
                    append_jsonl(args.out, result)
                    shipped = result["final"] or result["heldout"]
                    print(f"{dataset} draw {draw} {name}: shipped {json.dumps(shipped)} | baseline "
                          f"{json.dumps(result['baseline']['scores'])}", flush=True)
                for peer in peers:
                    with tempfile.TemporaryDirectory(dir=draw_work) as work:
                        result = peer_result(case, peer, peer_settings, levels, Path(work), args.setfit_steps)
                    result.update(dataset=dataset, draw=draw, config="peer", levels=list(levels))
                    results.append(result)
                    append_jsonl(args.out, result)
                    print(f"{dataset} draw {draw} {result['approach']}: {json.dumps(result['scores'])} "
                          f"in {result['seconds']:.0f} s", flush=True)
    table = summary_table(results, levels) + "\n" + decodings_table(results)
    print(table)
    args.out.with_suffix(".md").write_text(table)


if __name__ == "__main__":
    main()
