"""The training report: metrics as JSON and Markdown, training curves and the comparison as PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from training.config import TrainConfig
from training.evaluation import METRICS
from training.pipeline import MODEL_NAME, Evaluation


def write_report(
    report_dir: str | Path,
    evaluation: Evaluation,
    model_version: str | None = None,
    history: dict[str, list[float]] | None = None,
    training: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
) -> list[Path]:
    """Write ``metrics.json``, ``metrics.md``, ``comparison.png``, (with a history) ``training_curves.png`` and
    (when the training tuned its hyper-parameters) ``tuning.json`` and ``tuning.md``. ``run`` says how the report was
    made (``command``, ``source``: the commit, wall ``seconds``, ``cpus``), in both files."""
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"model_version": model_version, **evaluation.to_dict()}
    tuning = (training or {}).get("tuning")
    if run:
        payload["run"] = run
    if training:
        payload["training"] = {k: v for k, v in training.items() if k not in ("history", "tuning")}
    written = [out / "metrics.json", out / "metrics.md", out / "comparison.png"]
    if tuning:
        from training.tuning import tuning_markdown

        (out / "tuning.json").write_text(json.dumps(tuning, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        (out / "tuning.md").write_text(tuning_markdown(tuning), encoding="utf-8")
        written += [out / "tuning.json", out / "tuning.md"]
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
        *_run_lines(run),
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
    md += _seed_lines(evaluation)
    md += _settings_lines(evaluation, training, out)
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
        _plot_history(out / "training_curves.png", history, ((training or {}).get("validation") or {}).get("users"),
                      len((training or {}).get("members") or []))
    return written


def _run_lines(run: dict[str, Any] | None) -> list[str]:
    """One line on how the report was made: the command, the commit (from a git checkout), its wall time and the
    machine's CPUs."""
    if not run or not run.get("command"):
        return []
    minutes = float(run.get("seconds") or 0) / 60
    source = run.get("source") or {}
    changes = " with uncommitted changes" if source.get("uncommitted_changes") else ""
    at = f" at commit `{source['commit']}`{changes}" if source.get("commit") else ""
    return ["", f"Made by `{run['command']}`{at} in {minutes:.1f} minutes of wall time on {run.get('cpus')} CPUs."]


def _seed_lines(evaluation: Evaluation) -> list[str]:
    """With ``eval_seeds``: the seed means and standard deviations of every model that trains, beside the
    deterministic ones; then the served model's margin over its best peer per metric, on the single runs and on the
    seed means."""
    lines: list[str] = []
    if evaluation.seeds:
        seeds = ", ".join(str(s) for s in evaluation.seed_list)
        lines += ["", f"Over training seeds {seeds} (each model that trains, trained once per seed and scored on the "
                  "same users as its row above; popularity, item-kNN and EASE are deterministic): mean (standard "
                  "deviation).", "",
                  "| model | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
        for name, row in evaluation.results.items():
            runs = evaluation.seeds.get(name)
            cells = " | ".join(f"{runs['mean'][m]:.4f} ({runs['sd'][m]:.4f})" if runs else f"{row[m]:.4f}"
                               for m in METRICS)
            lines.append(f"| {name}{'' if runs else ' (deterministic)'} | {cells} |")
    sampled = " (on the baselines' sample of users)" if evaluation.served_on_sample else ""
    for means, lead in evaluation.leads():
        if lead:
            label = "the seed means" if means else "this run"
            lines += ["", f"{MODEL_NAME} against the best other model per metric (popularity aside), on {label}"
                      f"{sampled}: "
                      + "; ".join(f"{m} {v['relative']:+.1%} over {v['peer']}" for m, v in lead.items()) + "."]
    return lines


def _epochs_text(training: dict[str, Any]) -> str:
    """How long the two-tower trained: a fixed epoch count (the last kept) or where early stopping stopped (a
    manifest from before ``early_stopping`` existed early-stopped whenever it had validation users)."""
    cfg = training.get("config") or {}
    stopped = cfg.get("early_stopping", bool(training.get("validation", {}).get("users")))
    if stopped:
        return f"best epoch {training.get('best_epoch')} of {training.get('epochs_run')} (early stopping on validation)"
    return f"{training.get('epochs_run')} epochs (no early stopping; the last kept)"


def _settings_lines(evaluation: Evaluation, training: dict[str, Any] | None, out: Path) -> list[str]:
    """What ran: the two-tower's configuration and validation figures, each baseline's hyper-parameters, and
    where they were chosen (``tuning.md`` of this run, or of an earlier ``--tune`` run in the same directory)."""
    lines: list[str] = []
    if training and training.get("config"):
        cfg = training["config"]
        val = (training.get("validation") or {}).get("metrics") or {}
        members = training.get("members") or []
        ensemble = (f"an ensemble of {len(members)} models (seeds {', '.join(str(m['seed']) for m in members)}), "
                    "each with a " if members else "")
        lines += ["", f"Two-tower: {ensemble}`{cfg.get('user_tower', 'pooling')}` user tower, history length "
                  f"{cfg.get('history_length')}, temperature {cfg.get('temperature')}, target window "
                  f"{cfg.get('target_window')}, learning rate {cfg.get('learning_rate')}, {_epochs_text(training)} "
                  f"({training.get('seconds')} s of training)"
                  + (f"; validation Recall@10 {val['recall@10']:.4f} on {int(val['users'])} users" if val else "")
                  + "."]
    for name, info in evaluation.baselines.items():
        if "lambda" in info:
            lines += ["", f"{name}: lambda = {info['lambda']:g}."]
        elif "config" in info:
            c = info["config"]
            size = (f"{c.get('blocks')} block(s), {c.get('heads')} head(s)" if "blocks" in c
                    else f"GRU state {c.get('gru_units')}")
            loss = "full-catalog cross-entropy" if c.get("negatives") is None else f"{c['negatives']} sampled negatives"
            lines += ["", f"{name}: hidden {c.get('hidden')}, {size}, dropout {c.get('dropout')}, max length "
                      f"{c.get('max_len')}, {loss}, learning rate {c.get('learning_rate')}; "
                      f"{_epochs_text({**info, 'config': c})}, {info.get('training_seconds')} s of training."]
    tuning = (training or {}).get("tuning")
    if tuning:
        lines += ["", "Hyper-parameters chosen in this run on validation users only: [tuning.md](tuning.md)."]
    elif (out / "tuning.json").is_file() and training and training.get("config"):
        # the defaults are the choices of the searches in tuning.md (tests tie them to its records); a run's own seed
        # is not one of them
        defaults = {k: v for k, v in TrainConfig().to_dict().items() if k != "seed"}
        cfg = training["config"]
        differs = sorted(k for k, v in defaults.items() if cfg.get(k) != v)
        lines += ["", "Defaults chosen on validation users only by `recs train --tune`: [tuning.md](tuning.md); "
                  + ("this run trained the two-tower model with them." if not differs
                     else "this run's two-tower configuration differs from them in "
                     + ", ".join(f"`{k}`" for k in differs) + ".")]
    return lines


def _plot_comparison(path: Path, evaluation: Evaluation) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(evaluation.results)
    means = evaluation.seed_means()
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.6), constrained_layout=True)
    for ax, metric in zip(axes, METRICS, strict=True):
        values = [means[n][metric] for n in names]
        spread = [evaluation.seeds[n]["sd"][metric] if n in evaluation.seeds else float("nan")  # none: deterministic
                  for n in names]
        colors = ["#d1495b" if "two-tower" in n else "#edae49" if n in ("SASRec", "GRU4Rec") else "#8d99ae"
                  for n in names]
        bars = ax.bar(range(len(names)), values, color=colors, yerr=spread if evaluation.seeds else None,
                      capsize=3)
        ax.set_xticks(range(len(names)), [n.replace(" (served)", "\n(served)") for n in names], fontsize=7,
                      rotation=45 if len(names) > 4 else 0)
        ax.set_title(metric)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    title = f"{evaluation.dataset.get('name')}: two-tower (served path) against the baselines"
    if evaluation.seeds:
        seeds = ", ".join(str(s) for s in evaluation.seed_list)
        title += f"\nmeans over seeds {seeds} (bars: +/- one standard deviation) for the models that train"
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_history(path: Path, history: dict[str, list[float]], validation_users: int | None = None,
                  members: int = 0) -> None:
    """The loss and, when the training had validation users, their Recall@10 per epoch (the label says how many:
    on a small set the curve is noisy); for an ensemble of ``members``, the members' means (the axis says so)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax1 = plt.subplots(figsize=(6.4, 3.6), constrained_layout=True)
    epochs = range(1, len(history.get("loss", [])) + 1)
    ax1.plot(epochs, history.get("loss", []), "o-", color="#2e4057", label="training loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("in-batch softmax loss")
    if validation_users != 0:
        ax2 = ax1.twinx()
        label = "validation recall@10" + (f" ({validation_users:,} users)" if validation_users else "")
        ax2.plot(epochs, history.get("val_recall@10", []), "s--", color="#d1495b", label=label)
        ax2.set_ylabel("validation recall@10")
    if members > 1:
        ax1.set_xlabel(f"epoch (each curve: the mean of the ensemble's {members} members)")
    fig.legend(loc="upper center", ncols=2, fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
