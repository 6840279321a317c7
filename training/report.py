"""The training report: metrics as JSON and Markdown, training curves and the comparison as PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from training.evaluation import METRICS
from training.pipeline import Evaluation


def write_report(
    report_dir: str | Path,
    evaluation: Evaluation,
    model_version: str | None = None,
    history: dict[str, list[float]] | None = None,
    training: dict[str, Any] | None = None,
) -> list[Path]:
    """Write ``metrics.json``, ``metrics.md``, ``comparison.png`` and (with a history) ``training_curves.png``."""
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"model_version": model_version, **evaluation.to_dict()}
    if training:
        payload["training"] = {k: v for k, v in training.items() if k != "history"}
    written = [out / "metrics.json", out / "metrics.md", out / "comparison.png"]
    (out / "metrics.json").write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    ds = evaluation.dataset
    md = [
        "# Evaluation report",
        "",
        f"Dataset: `{ds.get('name')}` ({ds.get('users')} users, {ds.get('movies')} movies, "
        f"{ds.get('ratings')} ratings). Protocol: per user, the last 20% of ratings by time (at least one) "
        "are test items; the full catalog is ranked with the history excluded.",
        "",
        f"Model version: `{model_version}`" if model_version else "No model bundle (baselines only).",
        "",
        "| model | " + " | ".join(METRICS) + " | seconds |",
        "|---|" + "---:|" * (len(METRICS) + 1),
    ]
    for name, row in evaluation.results.items():
        cells = " | ".join(f"{row[m]:.4f}" for m in METRICS)
        md.append(f"| {name} | {cells} | {evaluation.seconds.get(name, 0):.1f} |")
    if evaluation.ci95:
        half = ", ".join(f"{name} {ci.get('recall@10', 0):.4f}" for name, ci in evaluation.ci95.items())
        md += ["", f"95% confidence half-widths of Recall@10 over the users scored: {half}."]
    if evaluation.sample:
        s = evaluation.sample
        served = (s.get("served") or {}).get("metrics") or {}
        md += ["", f"The baselines were scored on a seeded sample of {s['users']:,} of the {s['of']:,} test users "
               f"(seed {s['seed']}); the two-tower model on all of them"
               + (f" (on the same sample: Recall@10 {served['recall@10']:.4f})." if served else ".")]
    md += ["", "![model against the baselines](comparison.png)"]
    if history:
        md += ["", "![training curves](training_curves.png)"]
        written.append(out / "training_curves.png")
    (out / "metrics.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    _plot_comparison(out / "comparison.png", evaluation)
    if history:
        _plot_history(out / "training_curves.png", history)
    return written


def _plot_comparison(path: Path, evaluation: Evaluation) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(evaluation.results)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.6), constrained_layout=True)
    for ax, metric in zip(axes, METRICS, strict=True):
        values = [evaluation.results[n][metric] for n in names]
        bars = ax.bar(range(len(names)), values, color=["#d1495b" if "two-tower" in n else "#8d99ae" for n in names])
        ax.set_xticks(range(len(names)), [n.replace(" (served)", "\n(served)") for n in names], fontsize=7)
        ax.set_title(metric)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    fig.suptitle(f"{evaluation.dataset.get('name')}: two-tower (served path) against the baselines")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_history(path: Path, history: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax1 = plt.subplots(figsize=(6.4, 3.6), constrained_layout=True)
    epochs = range(1, len(history.get("loss", [])) + 1)
    ax1.plot(epochs, history.get("loss", []), "o-", color="#2e4057", label="training loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("in-batch softmax loss")
    ax2 = ax1.twinx()
    ax2.plot(epochs, history.get("val_recall@10", []), "s--", color="#d1495b", label="validation recall@10")
    ax2.set_ylabel("validation recall@10")
    fig.legend(loc="upper center", ncols=2, fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
