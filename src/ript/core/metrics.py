"""Run outputs: JSONL metrics, TensorBoard event files, the config, and learning-curve plots."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path


class MetricsLogger:
    """Appends one JSON line per iteration and mirrors numeric values to TensorBoard."""

    def __init__(self, run_dir: str | Path, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.run_dir / "metrics.jsonl"
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # lazy: pulls in tensorboard

            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tb"))

    def log(self, step: int, metrics: Mapping[str, object]) -> None:
        with self.jsonl_path.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}, default=float) + "\n")
            f.flush()
        if self._writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self._writer.add_scalar(key, value, step)
            self._writer.flush()

    def rewrite(self, rows: Iterable[Mapping]) -> None:
        """Replace metrics.jsonl with `rows` (after a resume); TensorBoard is left as it is."""
        tmp = self.jsonl_path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps({"step": r["iteration"], **r}, default=float) + "\n" for r in rows))
        tmp.replace(self.jsonl_path)

    def save_config(self, config: Mapping) -> None:
        (self.run_dir / "config.json").write_text(json.dumps(config, indent=2, default=str))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sensible at 0 % and 100 %, unlike p ± z·se)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_curves(
    rows: Iterable[Mapping], keys: list[str], path: str | Path, title: str = "", x_key: str = "step"
) -> Path:
    """One line per metric key against x_key; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(rows)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    for key in keys:
        points = [(r[x_key], r[key]) for r in rows if key in r and isinstance(r[key], (int, float))]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", markersize=3, label=key)
    ax.set_xlabel(x_key)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
