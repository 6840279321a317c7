"""The plan as a PNG: last week's observed demand and the next day's minimum capacity.

matplotlib is imported only here, inside the function (it is not in the Lambda asset's path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaling.plan import Plan


def write_plan_chart(plan: Plan, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(figsize=(11, 4.2))
    ax: Any = axes  # matplotlib's stubs do not take datetimes
    if plan.recent:
        times = [t for t, _ in plan.recent]
        values = [v if v is not None else float("nan") for _, v in plan.recent]
        label = "observed need: max(rate x p99 duration, peak concurrency)"
        ax.plot(times, values, color="tab:gray", linewidth=1.0, label=label)
    hours = [h.hour for h in plan.hours]
    if hours:
        ax.step(
            [h.fires_at for h in plan.hours],
            [h.min_capacity for h in plan.hours],
            where="post",
            color="tab:blue",
            linewidth=2.0,
            label="planned MinCapacity",
        )
        required = [h.required if h.required is not None else float("nan") for h in plan.hours]
        ax.plot(hours, required, "o", markersize=3, color="tab:orange", label="required (before clamping)")
        ax.axhline(plan.maximum, color="tab:red", linestyle=":", linewidth=1, label=f"maximum {plan.maximum}")
        ax.axhline(plan.floor, color="tab:green", linestyle=":", linewidth=1, label=f"floor {plan.floor}")
    ax.set_title(f"{plan.resource_id}: {plan.mode} plan, generated {plan.generated_at:%Y-%m-%d %H:%M} UTC")
    ax.set_ylabel("concurrency")
    ax.set_xlabel("UTC")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
