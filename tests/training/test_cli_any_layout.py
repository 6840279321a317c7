"""`recs train` and `recs evaluate` end to end on a small ml-100k-layout directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recs.cli import main

pytestmark = pytest.mark.slow


def make_ml100k(root: Path, users: int = 60, movies: int = 80, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    lines = []
    for m in range(1, movies + 1):
        flags = ["0"] * 19
        flags[1 + m % 18] = "1"
        lines.append(f"{m}|Movie number {m} ({1950 + m % 50})|01-Jan-1995||http://x|" + "|".join(flags))
    (root / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")
    ratings = []
    for u in range(1, users + 1):
        taste = u % 4
        for i, m in enumerate(rng.choice(np.arange(1 + taste, movies + 1, 4), size=12, replace=False)):
            ratings.append(f"{u}\t{m}\t{int(rng.integers(1, 6))}\t{880000000 + 1000 * i + u}")
    (root / "u.data").write_text("\n".join(ratings) + "\n")
    return root


def test_train_then_evaluate_on_the_100k_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    data = make_ml100k(tmp_path / "ml-100k")
    bundle = tmp_path / "bundle"
    code = main(["train", "--data", str(data), "--out", str(bundle), "--report", str(tmp_path / "report"),
                 "--epochs", "2", "--batch-size", "64", "--history-length", "10", "--quiet", "--json"])
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert summary["dataset"]["layout"] == "100k"
    assert set(summary["metrics"]) == {"two-tower (served)", "popularity", "item-kNN", "EASE"}
    for name in ("metrics.json", "metrics.md", "comparison.png", "training_curves.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["metrics"]["EASE"]["recall@10"] == summary["metrics"]["EASE"]["recall@10"]
    # the step really compiled with XLA (Keras falls back silently, with a warning, under op determinism)
    assert manifest["training"]["xla"] is True and manifest["training"]["op_determinism"] is False
    assert set(manifest["training"]["stages"]) == {"load", "examples", "training", "evaluation"}
    assert len(manifest["training"]["history"]["epoch_seconds"]) == 2
    assert summary["users"]["EASE"] == summary["users"]["two-tower (served)"] and summary["sample"] is None

    code = main(["evaluate", "--data", str(data), "--bundle", str(bundle), "--json"])
    assert code == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["model_version"] == summary["model_version"]
    assert again["metrics"]["two-tower (served)"] == pytest.approx(summary["metrics"]["two-tower (served)"])


def test_evaluate_reports_a_missing_directory_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    code = main(["evaluate", "--data", str(tmp_path / "missing"), "--bundle", "none"])
    assert code == 2
    assert "no such directory" in capsys.readouterr().err


def test_baselines_are_chosen_by_name_any_case_or_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    data = make_ml100k(tmp_path / "ml-100k")
    code = main(["evaluate", "--data", str(data), "--bundle", "none", "--baselines", "ease,Popularity", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(summary["metrics"]) == ["EASE", "popularity"]
    assert summary["baselines"]["EASE"]["lambda"] > 0
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--data", str(data), "--bundle", "none", "--baselines", "ease,bert4rec"])
    assert exc.value.code == 2
    assert "unknown baseline(s) bert4rec; choose from popularity, item-kNN, EASE, SASRec, GRU4Rec" in \
        capsys.readouterr().err


def test_all_means_every_baseline_and_the_default_is_the_fast_ones():
    from training.cli import _baseline_list
    from training.pipeline import BASELINES, DEFAULT_BASELINES

    assert _baseline_list("all") == BASELINES == ("popularity", "item-kNN", "EASE", "SASRec", "GRU4Rec")
    assert DEFAULT_BASELINES == ("popularity", "item-kNN", "EASE")
    assert _baseline_list("sasrec, gru4rec") == ("SASRec", "GRU4Rec")
