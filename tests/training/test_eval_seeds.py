"""``--eval-seeds``: every model that trains, trained once per seed and reported by its mean and spread beside its
single run (``training.pipeline.evaluate_all``, ``recs train``, ``recs evaluate``, the report)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.bundle import open_bundle
from core.errors import BundleError
from tests.training.test_sequential import N_ITEMS, chain_ratings, tiny
from training.evaluation import METRICS
from training.pipeline import MODEL_NAME, Evaluation, bundle_config, evaluate_all, format_table, margins, over_seeds
from training.report import write_report
from training.split import chronological_split

pytestmark = pytest.mark.slow


def test_over_seeds_gives_each_metrics_mean_and_sample_deviation_in_the_order_run() -> None:
    runs = {7: {"recall@10": 0.1, "ndcg@10": 0.3}, 3: {"recall@10": 0.3, "ndcg@10": 0.3}}
    out = over_seeds(runs)
    assert out["seeds"] == [7, 3] and list(out["by_seed"]) == ["7", "3"]
    assert out["mean"] == pytest.approx({"recall@10": 0.2, "ndcg@10": 0.3})
    assert out["sd"] == pytest.approx({"recall@10": np.std([0.1, 0.3], ddof=1), "ndcg@10": 0.0})
    assert over_seeds({5: {"recall@10": 0.4}})["sd"] == {"recall@10": 0.0}


def test_the_margin_is_over_the_best_peer_per_metric_with_popularity_aside() -> None:
    row = {m: 0.2 for m in METRICS}
    table = {MODEL_NAME: {**row, "recall@10": 0.22}, "popularity": {m: 0.5 for m in METRICS},
             "EASE": {**row, "recall@10": 0.2, "ndcg@10": 0.1}, "GRU4Rec": {**row, "recall@10": 0.1, "ndcg@10": 0.25}}
    lead = margins(table)
    assert lead["recall@10"]["peer"] == "EASE" and lead["recall@10"]["relative"] == pytest.approx(0.1)
    assert lead["ndcg@10"]["peer"] == "GRU4Rec" and lead["ndcg@10"]["relative"] == pytest.approx(-0.2)
    assert margins({MODEL_NAME: row, "popularity": row}) == {}


def test_sequential_baselines_train_once_per_seed_and_the_deterministic_ones_once(tmp_path: Path) -> None:
    split = chronological_split(chain_ratings())
    catalog = list(range(1, N_ITEMS + 1))
    config = tiny("SASRec", epochs=3)
    logs: list[str] = []
    ev = evaluate_all(split, catalog, {"name": "chains"}, None, ("popularity", "EASE", "SASRec"),
                      log=logs.append, sequential={"SASRec": config}, eval_seeds=(5, config.seed))
    assert any("SASRec trained with seed 5" in m for m in logs)
    assert not any(f"trained with seed {config.seed}" in m for m in logs)  # its own seed's run is reused
    assert set(ev.seeds) == {"SASRec"}  # popularity and EASE are deterministic: no seed runs
    runs = ev.seeds["SASRec"]
    assert runs["seeds"] == [5, config.seed]
    assert runs["by_seed"][str(config.seed)] == ev.results["SASRec"]  # its own seed's run is the table's row
    assert runs["by_seed"]["5"] != ev.results["SASRec"]  # another seed trained another model
    for metric in METRICS:
        by_seed = [runs["by_seed"][s][metric] for s in ("5", str(config.seed))]
        assert runs["mean"][metric] == pytest.approx(np.mean(by_seed))
        assert runs["sd"][metric] == pytest.approx(np.std(by_seed, ddof=1))
    assert ev.seed_means()["EASE"] == ev.results["EASE"]  # deterministic: its one run
    table = format_table(ev)
    assert "over seeds 5, 42: mean +/- standard deviation" in table
    assert f"{runs['mean']['recall@10']:.4f} +/- {runs['sd']['recall@10']:.4f}" in table
    write_report(tmp_path, ev)
    md = (tmp_path / "metrics.md").read_text()
    assert "Over training seeds 5, 42" in md and "| EASE (deterministic) |" in md
    written = json.loads((tmp_path / "metrics.json").read_text())["seeds"]["SASRec"]
    assert written["by_seed"]["5"] == runs["by_seed"]["5"]


def test_seeds_without_a_model_that_trains_are_refused() -> None:
    split = chronological_split(chain_ratings(users=10))
    with pytest.raises(ValueError, match="--eval-seeds: no model in this run trains"):
        evaluate_all(split, list(range(1, N_ITEMS + 1)), {}, None, ("popularity", "EASE"), log=lambda m: None,
                     eval_seeds=(1, 2))
    with pytest.raises(ValueError, match="distinct"):
        evaluate_all(split, list(range(1, N_ITEMS + 1)), {}, None, ("SASRec",), log=lambda m: None, eval_seeds=(1, 1))


def test_recs_train_and_evaluate_retrain_the_served_configuration_per_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from recs.cli import main
    from tests.training.test_cli_any_layout import make_ml100k

    data = make_ml100k(tmp_path / "ml-100k")
    bundle = tmp_path / "bundle"
    model = ["--epochs", "2", "--batch-size", "64", "--history-length", "10", "--no-jit", "--seed", "9"]
    # the baselines on a sample of 30 users: the margins compare the served model on the same sample
    assert main(["train", "--data", str(data), "--out", str(bundle), "--report", str(tmp_path / "report"),
                 "--baselines", "popularity,EASE", "--quiet", "--eval-seeds", "9,4", "--baseline-users", "30",
                 *model]) == 0
    printed = capsys.readouterr().out
    assert "over seeds 9, 4" in printed
    assert "against the best peer (seed means) on the baselines' sample of users" in printed
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    runs = report["seeds"][MODEL_NAME]
    on_sample = report["sample"]["served"]["metrics"]
    assert runs["sample"]["by_seed"]["9"] == on_sample and runs["sample"]["by_seed"]["4"] != on_sample
    single = on_sample["recall@10"] / report["metrics"]["EASE"]["recall@10"] - 1
    means = runs["sample"]["mean"]["recall@10"] / report["metrics"]["EASE"]["recall@10"] - 1
    md = (tmp_path / "report" / "metrics.md").read_text()
    assert f"on this run (on the baselines' sample of users): recall@10 {single:+.1%} over EASE" in md
    assert f"on the seed means (on the baselines' sample of users): recall@10 {means:+.1%} over EASE" in md
    # the report says how it was made: the command line as typed (quoted where a shell needs it), wall time, CPUs
    assert report["run"]["command"].startswith(f"recs train --data {data} --out {bundle} ")
    assert report["run"]["command"].endswith(" --eval-seeds 9,4 --baseline-users 30 " + " ".join(model))
    assert report["run"]["seconds"] > 0 and report["run"]["cpus"] >= 1
    assert report["run"]["source"] is None or len(report["run"]["source"]["commit"]) >= 7  # None outside a checkout
    source = report["run"]["source"]
    at = f" at commit `{source['commit']}`" if source else ""  # the suite runs from a checkout in CI: with a commit
    assert f"Made by `{report['run']['command']}`{at}" in md and " minutes of wall time on " in md
    assert runs["seeds"] == [9, 4] and set(runs["by_seed"]) == {"9", "4"}  # metrics.json sorts keys: the list orders
    assert set(report["seeds"]) == {MODEL_NAME}
    assert runs["by_seed"]["9"] == report["metrics"][MODEL_NAME]  # the bundle is the --seed run
    assert runs["by_seed"]["4"] != runs["by_seed"]["9"]
    assert json.loads((bundle / "manifest.json").read_text())["training"]["config"]["seed"] == 9

    # recs evaluate retrains the bundle's recorded configuration: the same runs (deterministic ops without XLA)
    assert main(["evaluate", "--data", str(data), "--bundle", str(bundle), "--no-baselines", "--eval-seeds", "4,9",
                 "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["dataset"] == report["dataset"]  # the ratings counted before the split takes them over
    again = evaluated["seeds"][MODEL_NAME]
    assert again["by_seed"]["9"] == report["metrics"][MODEL_NAME]
    assert again["by_seed"]["4"] == pytest.approx(runs["by_seed"]["4"])

    # another data set's bundle is refused before any training
    other = make_ml100k(tmp_path / "other", movies=90)
    assert main(["evaluate", "--data", str(other), "--bundle", str(bundle), "--no-baselines", "--eval-seeds", "4"]) == 2
    assert "--eval-seeds: the bundle's catalog is not --data's movies" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(data), "--bundle", "none", "--baselines", "EASE", "--eval-seeds", "4"]) == 2
    assert "--eval-seeds: no model in this run trains" in capsys.readouterr().err

    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["training"]["config"]["wings"] = 2
    del manifest["training"]["config"]["early_stopping"]  # an older version's bundle: today's default may differ
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="settings it does not know: wings; settings it lacks: early_stopping"):
        bundle_config(open_bundle(bundle))
    assert main(["evaluate", "--data", str(data), "--bundle", str(bundle), "--no-baselines", "--eval-seeds", "4"]) == 2
    assert "does not know: wings" in capsys.readouterr().err
    del manifest["training"]["config"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="its manifest records none"):
        bundle_config(open_bundle(bundle))


def test_an_evaluation_without_seeds_keeps_its_one_table(tmp_path: Path) -> None:
    ev = Evaluation({"name": "x"}, {MODEL_NAME: {m: 0.2 for m in METRICS}, "EASE": {m: 0.1 for m in METRICS}}, {})
    assert "over seeds" not in format_table(ev) and "(seed means)" not in format_table(ev)
    assert "recall@10 +100.0% (EASE)" in format_table(ev)
    write_report(tmp_path, ev)
    assert "Over training seeds" not in (tmp_path / "metrics.md").read_text()
