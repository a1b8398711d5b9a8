"""The benchmark code paths run (on the tiny BERT and a small demo slice): noisy.py's held-out run, retrain with
promotion and refit; seed_averaging.py's refit per seed; relabel_rounds.py's training, queue and answer import;
label noise that looks like an LLM's."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmarks.label_noise import llm_label_noise
from benchmarks.noisy import make_case, run_pipeline
from callreason.params import settings_from_params
from callreason.taxonomy import LEVELS

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def small_case():
    case = make_case("demo", 0)
    return replace(case, labeled=case.labeled.iloc[:160].reset_index(drop=True), external=case.external.iloc[:60],
                   pool=case.pool.iloc[:80])


@pytest.fixture()
def fast_settings(tiny_params):
    params = {**tiny_params, "epochs": 1, "split": {**tiny_params["split"], "min_rows_per_class": 1},
              "pseudo_label": {**tiny_params["pseudo_label"], "min_confidence": 0.01}}
    return settings_from_params(params)


def test_the_noisy_benchmark_runs_heldout_retrain_and_refit(tmp_path, small_case, fast_settings):
    result = run_pipeline(small_case, fast_settings, tmp_path, LEVELS, refit=True, retrain=True)
    assert result["rows_final"] >= result["rows_heldout_train"] > 0
    for run in ("heldout", "final"):
        assert set(result[run]) == {*LEVELS, "path_accuracy", "decodings"}
        assert set(result[run]["decodings"]) == {"argmax", "leaf", "marginal"}
    decision = result["retrain"]
    assert decision["pseudo_rows"] > 0 and isinstance(decision["promoted"], bool)
    # the refit trains on every kept row, plus the pseudo rows exactly when the retrained run was promoted
    assert result["rows_final"] == result["rows_kept"] + decision["pseudo_rows"] * decision["promoted"]


def test_configurations_that_differ_only_from_retrain_on_share_one_heldout_run(tmp_path, small_case, fast_settings,
                                                                              monkeypatch):
    import benchmarks.noisy as noisy

    trained, refits = [], []
    real_train, real_refit = noisy.train_heldout, noisy.run_refit
    monkeypatch.setattr(noisy, "train_heldout", lambda *args, **kwargs: trained.append(1) or real_train(*args, **kwargs))
    monkeypatch.setattr(noisy, "run_refit", lambda *args, **kwargs: refits.append(1) or real_refit(*args, **kwargs))
    (tmp_path / "draw").mkdir()
    runs = noisy.HeldoutRuns(tmp_path / "draw", {})
    choose = replace(fast_settings, pseudo_label=replace(fast_settings.pseudo_label, retrain_epochs="early_stopping"))
    replayed = run_pipeline(small_case, fast_settings, tmp_path / "a", LEVELS, retrain=True, heldout_runs=runs)
    chosen = run_pipeline(small_case, choose, tmp_path / "b", LEVELS, retrain=True, heldout_runs=runs)
    assert len(trained) == 1 and replayed["heldout"] == chosen["heldout"] and replayed["choices"] == chosen["choices"]
    promoted = [r["retrain"]["promoted"] for r in (replayed, chosen)]
    assert len(refits) == sum(promoted) + (not all(promoted))  # one refit serves every configuration not promoted
    if not any(promoted):
        assert replayed["final"] == chosen["final"]
    run_pipeline(small_case, replace(fast_settings, seed=7), tmp_path / "c", LEVELS, refit=False, heldout_runs=runs)
    assert len(trained) == 2  # another seed: another held-out run


def test_seed_averaging_scores_each_seeds_refit(tmp_path, small_case, fast_settings):
    from benchmarks.seed_averaging import final_log_proba

    settings = replace(fast_settings, train=replace(fast_settings.train, early_stopping=False))  # no probe-only pick
    one = final_log_proba(small_case, settings, 42, tmp_path / "a")
    other = final_log_proba(small_case, settings, 43, tmp_path / "b")
    assert one.shape == other.shape == (len(small_case.external), len(small_case.taxonomy.labels["level_3"]))
    np.testing.assert_allclose(np.exp(one).sum(1), 1.0, atol=1e-4)
    assert not np.allclose(one, other)  # the seed changed the model, not the rows


def test_relabel_rounds_pick_answer_and_import(tmp_path, small_case, fast_settings):
    from benchmarks.relabel_rounds import answers_for, errors_caught, pick, scored_pool, train_and_score
    from callreason.relabel import apply_relabels, empty_relabeled, merge_answers
    from callreason.validation import validate_labeled

    pool, gold = small_case.pool[["call_id", "summary"]], small_case.pool[["call_id", *LEVELS]]
    f1, probs = train_and_score(small_case.labeled, small_case.taxonomy, fast_settings, "level_3",
                                small_case.external, pool, tmp_path)
    assert probs.shape == (len(pool), len(small_case.taxonomy.labels["level_3"]))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert f1 == round(f1, 4) and f1 > 0  # rounded as in the report; a model that never hits a class scores 0
    scored = scored_pool(pool, probs, small_case.taxonomy)
    assert set(errors_caught(scored, gold)) >= {"pool_error_rate", "margin"}
    ids = pick("margin", scored, 10, 0)
    assert len(ids) == 10 and ids != pick("random-1", scored, 10, 1)
    answers = answers_for(ids, pool, gold, small_case.taxonomy, noisy=False, seed=0)
    labeled, _ = validate_labeled(small_case.labeled, small_case.taxonomy, "labeled")
    merged, counts = merge_answers(empty_relabeled(), answers, labeled, "queue")
    relabeled, _ = validate_labeled(merged, small_case.taxonomy, "relabeled")
    grown, _ = apply_relabels(labeled, relabeled)
    assert counts["new_labeled_rows"] == 10 and len(grown) == len(labeled) + 10


def test_simulated_llm_noise_prefers_siblings_and_lowers_confidence(small_case):
    case = make_case("demo", 1)
    frame = case.labeled.iloc[:600].reset_index(drop=True)
    noisy, wrong = llm_label_noise(frame, case.taxonomy, 0.2, seed=0)
    assert wrong.sum() == 120 and (noisy.loc[wrong, "level_3"] != frame.loc[wrong, "level_3"]).all()
    assert (noisy.loc[~wrong, "level_3"] == frame.loc[~wrong, "level_3"]).all()
    same_area = (noisy.loc[wrong, "level_1"] == frame.loc[wrong, "level_1"]).mean()
    assert same_area > 0.8  # mostly a sibling or a cousin, rarely anything
    assert noisy.loc[wrong, "confidence"].mean() < noisy.loc[~wrong, "confidence"].mean() - 0.05
    assert np.isin(noisy["confidence"], np.round(noisy["confidence"], 2)).all()


def test_the_small_skewed_demo_sets_share_rows_and_labels_and_only_the_texts_are_long():
    short, long = make_case("demo-skewed-small", 2), make_case("demo-long-skewed-small", 2)
    assert short.labeled["call_id"].tolist() == long.labeled["call_id"].tolist()
    assert short.labeled[list(LEVELS)].equals(long.labeled[list(LEVELS)]) and short.wrong == long.wrong
    assert long.labeled["summary"].str.split().str.len().median() > 3 * short.labeled["summary"].str.split().str.len().median()
    assert 300 <= len(short.labeled) <= 400 and len(short.pool) == 1000 and 950 <= len(short.external) <= 1050
    seen, gold, pool = (set(frame["call_id"]) for frame in (short.labeled, short.external, short.pool))
    assert not seen & gold and not seen & pool and not gold & pool
    areas = short.external["level_1"].value_counts(normalize=True)
    assert 0.45 <= areas.iloc[0] <= 0.55 and areas.iloc[1] < 0.2  # half of the gold rows in one level_1
    leaf_rows = short.labeled.groupby("level_3").size()
    assert ((leaf_rows >= 3) & (leaf_rows <= 10)).mean() > 0.6 and leaf_rows.max() > 40
    assert 0.05 < len(short.wrong) / len(short.labeled) < 0.15  # the demo labeler's own mistakes


def test_simcse_adaptation_lowers_its_loss_and_keeps_a_loadable_encoder(tmp_path, tiny_model_dir, small_case):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from benchmarks.adaptation import simcse_adapt, simcse_loss

    texts = small_case.labeled["summary"].tolist()[:64]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    def loss_of(folder) -> float:
        torch.manual_seed(0)
        encoder = AutoModel.from_pretrained(folder).train()
        with torch.no_grad():
            return float(simcse_loss(encoder, tokenizer, texts))

    adapted = simcse_adapt(texts, str(tiny_model_dir), tmp_path / "adapted", epochs=20, lr=1e-3, batch_size=16)
    assert loss_of(adapted) < loss_of(tiny_model_dir)
    assert (adapted / "config.json").exists() and AutoTokenizer.from_pretrained(adapted).vocab == tokenizer.vocab


def test_a_benchmark_draw_gives_what_the_stages_give_on_the_same_rows(tmp_path, small_case, fast_settings, tiny_params):
    """benchmarks/noisy.py runs the stages' own functions: the stage scripts on a project made of the draw's
    rows and the benchmark in memory ship the same final models (the same scores on the external rows) and
    take the same retrain decision."""
    import json
    import shutil
    from pathlib import Path

    import yaml

    from benchmarks.noisy import final_scores_of
    from callreason.run_folder import RunFolder
    from tests.conftest import run_entry_point

    params = {**tiny_params, "epochs": 1, "split": {**tiny_params["split"], "min_rows_per_class": 1},
              "pseudo_label": {**tiny_params["pseudo_label"], "min_confidence": 0.01}}
    assert settings_from_params(params) == fast_settings
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "taxonomy").mkdir()
    shutil.copy(Path(__file__).parents[1] / "dvc.yaml", project / "dvc.yaml")
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (project / "taxonomy" / "taxonomy.json").write_text(json.dumps(small_case.taxonomy.to_dict()))
    small_case.labeled.to_parquet(project / "data" / "phase2_labeled.parquet", index=False)
    small_case.pool[["call_id", "summary"]].to_parquet(project / "data" / "unlabeled_summaries.parquet", index=False)
    for command in (("stages.filter",), ("stages.encode",), *(("stages.train", "--level", lv) for lv in LEVELS),
                    ("stages.evaluate",), ("stages.retrain",), ("stages.refit",)):
        code, _, err = run_entry_point(command, project)
        assert code == 0, f"{command}: {err[-2000:]}"
    result = run_pipeline(small_case, fast_settings, tmp_path / "benchmark", LEVELS, refit=True, retrain=True)
    assert final_scores_of(RunFolder(project / "models" / "final"), LEVELS, small_case) == result["final"]
    retrain = json.loads((project / "metrics" / "retrain.json").read_text())
    assert {k: retrain[k] for k in ("promoted", "level_3_macro_f1_gain", "path_accuracy_gain")} == \
        {k: result["retrain"][k] for k in ("promoted", "level_3_macro_f1_gain", "path_accuracy_gain")}
    assert json.loads((project / "reports" / "refit.json").read_text())["gold_rows"] + \
        json.loads((project / "reports" / "refit.json").read_text())["pseudo_rows"] == result["rows_final"]


def test_the_profile_runs_each_stage_after_every_stage_whose_outputs_it_reads(tmp_path):
    from benchmarks.profile_repro import stage_order

    order = stage_order(ROOT / "dvc.yaml")
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert sorted(order) == sorted(stages)
    assert order.index("encode") < order.index("train_l1") < order.index("evaluate") < order.index("retrain")
    assert order.index("retrain") < order.index("refit") < order.index("pseudo_label") < order.index("select_uncertain")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "b": {"cmd": "x", "deps": ["out_a/file"], "outs": ["out_b"]},
        "a": {"cmd": "x", "deps": ["out_b"], "outs": ["out_a"]}}}))
    with pytest.raises(SystemExit, match="circle"):
        stage_order(tmp_path / "dvc.yaml")


def test_two_profiles_compare_stage_by_stage_with_the_speed_up():
    from benchmarks.profile_repro import comparison

    def profile(seconds: dict[str, float], bf16: bool) -> dict:
        return {"machine": {"cpu": "cpu", "native_bf16": bf16}, "total_seconds": sum(seconds.values()),
                "seconds_to_first_heldout_score": seconds["evaluate"],
                "training_phases_seconds": {"fine_tune": seconds["evaluate"] / 2},
                "stages": [{"stage": stage, "seconds": value} for stage, value in seconds.items()]}

    table = comparison(profile({"evaluate": 60.0, "retrain": 300.0}, False),
                       profile({"evaluate": 30.0, "retrain": 100.0, "new": 5.0}, True))
    assert "native bf16 no; after: cpu, native bf16 yes" in table
    assert "| retrain | 300 | 100 | 3.00x |" in table
    assert "| new |  | 5 |  |" in table
    assert "| training: fine_tune | 30 | 15 | 2.00x |" in table
    assert "| **whole run** | 360 | 135 | 2.67x |" in table


def test_leaf_decoding_takes_levels_1_2_from_the_best_leaf_and_marginal_sums_the_paths():
    from benchmarks.noisy import decoding_scores
    from callreason.demo import make_taxonomy
    from callreason.taxonomy import Taxonomy

    taxonomy = Taxonomy.from_dict(make_taxonomy())
    paths = taxonomy.paths[np.arange(len(taxonomy.paths)) % len(taxonomy.paths)]
    n = len(paths)
    sizes = [len(taxonomy.labels[lv]) for lv in LEVELS]
    # level_1's classifier always says the wrong level_1; level_2's knows nothing; the leaf classifier is right
    wrong_l1 = (paths[:, 0] + 1) % sizes[0]
    probs = [np.eye(sizes[0])[wrong_l1] * 0.9 + 0.1 / sizes[0], np.full((n, sizes[1]), 1.0 / sizes[1]),
             np.eye(sizes[2])[paths[:, 2]] * 0.6 + 0.4 / sizes[2]]
    scores = decoding_scores(paths, taxonomy, probs)
    assert scores["leaf"] == {lv: 1.0 for lv in LEVELS}
    assert scores["argmax"]["level_1"] == 0.0
    # p1 (0.9 wrong) outweighs the leaf's 0.6: the joint path and its marginals follow level_1
    assert scores["marginal"]["level_1"] == 0.0


def test_long_text_windows_cover_every_token_and_pool_per_text(tiny_model_dir):
    from benchmarks.long_texts import encode_windows, head_tail, per_text
    from callreason.modeling import build_classifier

    model, tokenizer = build_classifier(str(tiny_model_dir), ["a", "b"], pooling="mean")
    model.eval()
    words = [w for w in tokenizer.get_vocab() if w.isalpha() and len(w) > 1][:5]
    texts = [" ".join(words * 12), " ".join(words[:2])]
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    vectors, owner, counts = encode_windows(model, tokenizer, texts, width=16)
    assert np.bincount(owner).tolist() == [-(-lengths[0] // 14), 1]  # 14 text tokens per window of 16
    assert (counts - 2).sum() == sum(lengths)
    first, mean, top = (per_text(vectors, owner, counts, 2, how) for how in ("first", "mean", "max"))
    assert np.allclose(first[1], vectors[-1]) and np.allclose(mean[1], vectors[-1]) and np.allclose(top[1], vectors[-1])
    weights = counts[owner == 0] / counts[owner == 0].sum()
    assert np.allclose(mean[0], (vectors[owner == 0] * weights[:, None]).sum(0), atol=1e-6)
    assert np.allclose(top[0], vectors[owner == 0].max(0))
    assert head_tail(model, tokenizer, texts).shape == (2, model.head.in_features)
    both = per_text(vectors, owner, counts, 2, "mean+max")
    assert np.allclose(both, np.hstack([mean, top]))


def test_long_text_idf_windows_pool_as_the_pipeline_does_and_weigh_windows_by_their_tokens(tiny_model_dir):
    from benchmarks.long_texts import encode_windows
    from callreason.modeling import build_classifier, run_batched, token_idf

    model, tokenizer = build_classifier(str(tiny_model_dir), ["a", "b"], pooling="mean", max_length=16,
                                        token_weighting="idf")
    words = [w for w in tokenizer.get_vocab() if w.isalpha() and len(w) > 1][:5]
    texts = [" ".join(words * 6), " ".join(words[:2])]
    model.token_weights = token_idf(tokenizer([" ".join(words[:3]), words[0]])["input_ids"], len(tokenizer))
    weights = model.token_weights.numpy()
    vectors, owner, counts = encode_windows(model.eval(), tokenizer, texts, 16, weights)
    windows = tokenizer(texts, truncation=True, max_length=16, return_overflowing_tokens=True)["input_ids"]
    assert np.allclose(counts, [weights[w].sum() for w in windows]) and len(set(counts.round(4))) > 1
    assert np.allclose(vectors[owner == 1][0], run_batched(model, tokenizer, texts[1:], output="pooled")[0], atol=1e-5)


def test_long_text_sentences_are_encoded_one_by_one_and_pooled_per_text(tiny_model_dir):
    from benchmarks.long_texts import encode_sentences, pooled_windows
    from callreason.modeling import build_classifier

    model, tokenizer = build_classifier(str(tiny_model_dir), ["a", "b"], pooling="mean")
    model.eval()
    words = [w for w in tokenizer.get_vocab() if w.isalpha() and len(w) > 1][:4]
    first, second, alone = f"{words[0]} {words[1]}.", f"{words[2]}? {words[3]}!", " ".join(words)
    vectors, owner, counts = encode_sentences(model, tokenizer, [f"{first}  {second}", alone])
    assert owner.tolist() == [0, 0, 0, 1]  # three sentences, then a text without a sentence end: one unit
    units = [f"{words[0]} {words[1]}.", f"{words[2]}?", f"{words[3]}!", alone]
    ids = tokenizer(units)["input_ids"]
    assert counts.tolist() == [len(row) for row in ids]
    assert np.allclose(vectors, pooled_windows(model, ids, tokenizer.pad_token_id), atol=1e-5)


def test_peers_train_on_the_filtered_rows_and_sit_in_the_table_beside_the_pipeline(tmp_path, small_case,
                                                                                   fast_settings):
    from benchmarks.noisy import filtered_dataset, peer_result, summary_table

    result = peer_result(small_case, "seed-recipe", fast_settings, LEVELS, tmp_path, setfit_steps=5)
    kept, _ = filtered_dataset(small_case, fast_settings)
    assert result["rows"] == len(kept) < len(small_case.labeled) and result["seconds"] > 0
    assert set(result["scores"]) >= {*LEVELS, "path_accuracy"}
    assert all(0.0 <= result["scores"][lv]["macro_f1"] <= 1.0 for lv in LEVELS)
    table = summary_table([{**result, "dataset": "demo", "draw": 0, "config": "peer", "levels": list(LEVELS)}], LEVELS)
    assert "| demo | seed recipe (the notebook's: fresh head, whole encoder, lr 2e-5, 4 epochs) | 1 |" in table


def test_seed_recipe_peers_train_at_the_notebooks_settings_and_at_lr_1e4(monkeypatch, tmp_path, small_case):
    import inspect

    import benchmarks.seed_recipe
    from benchmarks.peers import peer_probs

    defaults = inspect.signature(benchmarks.seed_recipe.seed_recipe_probs).parameters
    assert (defaults["learning_rate"].default, defaults["epochs"].default, defaults["batch_size"].default) == (2e-5, 4, 8)
    calls = []

    def recorded(train, val, test, level, n_classes, base, work, **settings):
        calls.append(settings)
        return np.full((len(test), n_classes), 1.0 / n_classes), {}

    monkeypatch.setattr(benchmarks.seed_recipe, "seed_recipe_probs", recorded)
    rows = small_case.labeled.assign(level_1_id=0, split=np.where(np.arange(len(small_case.labeled)) % 5, "train", "val"))
    for name in ("seed-recipe", "seed-recipe-lr1e-4"):
        peer_probs(name, rows, small_case.external, small_case.taxonomy, ("level_1",), "base", tmp_path)
    assert [{k: v for k, v in c.items() if k != "seed"} for c in calls] == [{}, {"epochs": 6, "learning_rate": 1e-4}]


def test_setfit_peer_gives_probabilities_over_every_class(tmp_path, small_case, tiny_params):
    pytest.importorskip("setfit")
    from benchmarks.peers import setfit_probs

    train = small_case.labeled.iloc[:40].assign(level_1_id=lambda f: f["level_1"].astype("category").cat.codes)
    probs = setfit_probs(train, small_case.external.iloc[:10], "level_1", 12, tiny_params["model"]["base"],
                         tmp_path, max_steps=2)
    assert probs.shape == (10, 12)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)


def test_the_class_balanced_tfidf_peer_gives_a_rare_class_more_of_the_doubt(tmp_path, small_case, fast_settings):
    from benchmarks.common import tfidf_lr
    from benchmarks.noisy import filtered_dataset, peer_result
    from benchmarks.peers import TFIDF_BALANCED
    from callreason.taxonomy import Taxonomy

    taxonomy = Taxonomy.from_dict({"a": {"a1": ["a11"]}, "b": {"b1": ["b11"]}})
    train = pd.DataFrame({"summary": ["card was charged twice"] * 30 + ["card never arrived"] * 3})
    for level in LEVELS:
        train[f"{level}_id"] = [0] * 30 + [1] * 3
    test = pd.DataFrame({"summary": ["card"]})  # a word both classes share: the prior decides
    plain, balanced = (tfidf_lr(train, test, taxonomy, class_weight=w)[2][0] for w in (None, "balanced"))
    assert balanced[1] > plain[1] + 0.1 and np.isclose(balanced.sum(), 1.0)

    result = peer_result(small_case, "tfidf-balanced", fast_settings, LEVELS, tmp_path, setfit_steps=5)
    _, dataset = filtered_dataset(small_case, fast_settings)
    assert result["approach"] == TFIDF_BALANCED and result["rows"] == len(dataset)
    assert all(0.0 < result["scores"][lv]["macro_f1"] <= 1.0 for lv in LEVELS)


def test_long_text_scores_blend_with_tfidf_and_decode_the_path_and_mil_takes_the_surest_unit():
    from benchmarks.long_texts import BLEND_WEIGHTS, level_scores, mil_probs
    from callreason.demo import make_taxonomy
    from callreason.taxonomy import Taxonomy

    taxonomy = Taxonomy.from_dict(make_taxonomy())
    paths = taxonomy.paths[:40]
    truth = {lv: paths[:, i] for i, lv in enumerate(LEVELS)}
    sizes = {lv: len(taxonomy.labels[lv]) for lv in LEVELS}
    right = {lv: np.eye(sizes[lv])[truth[lv]] * 0.9 + 0.1 / sizes[lv] for lv in LEVELS}
    wrong = {lv: np.roll(right[lv], 1, axis=1) for lv in LEVELS}
    alone = level_scores(truth, right, None, taxonomy)
    assert alone["scores"] == {lv: 1.0 for lv in LEVELS} and alone["joint"] == {"lexical": {lv: 1.0 for lv in LEVELS}}
    blended = level_scores(truth, wrong, right, taxonomy)
    assert set(blended["joint"]) == {str(w) for w in BLEND_WEIGHTS} and blended["scores"]["level_3"] == 0.0
    assert blended["joint"]["0.7"]["level_3"] == 1.0  # the TF-IDF side outweighs a wrong encoder at 0.7

    # units 0-1 belong to text 0, unit 2 to text 1; unit 1 alone says class 1, the filler unit 0 says nothing
    x_train = np.array([[0.0, 0.0], [0.0, 5.0], [0.0, 0.0], [5.0, 0.0]])
    owner_train, owner_test = np.array([0, 0, 1, 1]), np.array([0, 0, 1])
    x_test = np.array([[0.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
    probs = mil_probs((x_train, owner_train, None), (x_test, owner_test, None), np.array([1, 0]), 2, 3, 10.0, 0)
    assert probs.shape == (2, 3) and probs.argmax(1).tolist() == [1, 0] and np.allclose(probs.sum(1), 1.0)
