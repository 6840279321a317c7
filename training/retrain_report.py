"""The retraining report for people (``retrain-report.md``): the decision and why, both models side by side,
the gate's checks. ``training.retrain`` writes it next to ``retrain-report.json``."""

from __future__ import annotations

from typing import Any

from training.evaluation import METRICS
from training.gate import GATED_METRICS


def render_markdown(report: dict[str, Any]) -> str:
    """The report for people: the decision and why, both models side by side, the gate's checks."""
    new, live = report.get("new") or {}, report.get("live") or {}
    lines = [
        f"# Retrain: {str(report.get('decision', '?')).replace('_', ' ')}",
        "",
        f"{report.get('reason', '')}",
        "",
        f"- started {report.get('started_at')}, finished {report.get('finished_at')} ({report.get('seconds')} s)",
        f"- data: {report['data'].get('location')}" + (f" ({_dataset_text(report['data']['dataset'])})"
                                                       if report["data"].get("dataset") else ""),
        f"- bundle root: {report.get('bundle_root')}; live index: {report.get('live_index')}",
        f"- runs in a row not published: {report.get('not_published_streak', '-')}",
        "",
    ]
    if new.get("metrics"):
        live_name = f"live {live.get('model_version')}" if live.get("metrics") else None
        header = ["metric", f"new {new.get('model_version')}", *([live_name, "new - live"] if live_name else [])]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for metric in METRICS:
            ours = new["metrics"].get(metric)
            row = [f"**{metric}**" if metric in GATED_METRICS else metric, _with_ci(ours, new.get("ci95", {}), metric)]
            if live_name:
                theirs = live["metrics"].get(metric)
                row += [_with_ci(theirs, live.get("ci95", {}), metric), f"{ours - theirs:+.4f}"]
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", f"Both scored through the served path (numpy user tower, exported vectors) on the same "
                      f"chronological split of the newest data, {new.get('users', 0):,} test users; 95% CIs.", ""]
    elif live.get("model_version"):
        lines += [f"Live model: {live['model_version']}.", ""]
    checks = (report.get("gate") or {}).get("checks") or []
    if checks:
        lines += ["| gate check | passed | detail |", "|---|---|---|"]
        lines += [f"| {c['name']} | {'yes' if c['passed'] else 'NO'} | {c['detail']} |" for c in checks]
        lines += ["", f"Tolerance {report['gate']['tolerance']} on {', '.join(report['gate']['metrics'])}"
                      f"{' (forced)' if report['gate'].get('force') else ''}.", ""]
    training = new.get("training") or {}
    if training:
        lines += [f"Training: {training.get('epochs_run')} epochs (best {training.get('best_epoch')}), "
                  f"{training.get('seconds')} s, parity: largest absolute difference "
                  f"{training.get('parity_max_abs_diff')}.", ""]
    if new.get("location"):
        lines += [f"Published to {new['location']}; the indexer makes it live (`recs index rollback` goes back).", ""]
    return "\n".join(lines)


def _with_ci(value: float | None, ci: dict[str, float], metric: str) -> str:
    if value is None:
        return "-"
    half = ci.get(metric)
    return f"{value:.4f}" + (f" ± {half:.4f}" if half else "")


def _dataset_text(dataset: dict[str, Any]) -> str:
    return (f"{dataset.get('name')}, {dataset.get('ratings', 0):,} ratings, {dataset.get('users', 0):,} users, "
            f"{dataset.get('movies', 0):,} movies")

