"""One page per run that says what happened, without reading JSON (`ript report RUN_DIR`).

Works on every run folder ript writes (`ript train` on LIBERO, the ROS trainer node, `ript toy`):
it reads `config.json`, `metrics.jsonl` (a damaged line is skipped and counted, never fatal) and,
where the run stored its trials (the ROS trainer), their rewards, judges and first/last camera
frames. It writes `report.html` (self-contained: plots and frames are embedded, nothing is loaded
from anywhere) and `report.md` with its plots in `report_files/`.

    ript report runs/libero/20261205-101500            # -> runs/libero/20261205-101500/report.html
    ript report runs/ros/sim --out /tmp/sim_report
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ript.core.constants import OBS_IMAGE_PREFIX
from ript.core.metrics import wilson_interval

log = logging.getLogger("ript.report")


@dataclass
class Run:
    folder: Path
    rows: list[dict]
    config: dict
    skipped_lines: int = 0
    trials: list[dict] = field(default_factory=list)
    """Stored trials (ROS runs): iteration, context_id, reward, reward_source, frames."""


def read_run(folder: str | Path, max_filmstrips: int = 4) -> Run:
    folder = Path(folder)
    if not folder.is_dir():
        raise SystemExit(f"ript report: {folder} is not a run folder")
    rows, skipped = [], 0
    metrics = folder / "metrics.jsonl"
    for line in metrics.read_text(errors="replace").splitlines() if metrics.exists() else []:
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or "iteration" not in row:
                raise ValueError("no iteration")
            rows.append(row)
        except ValueError:
            skipped += 1
    config = {}
    if (folder / "config.json").exists():
        try:
            config = json.loads((folder / "config.json").read_text())
        except ValueError:
            log.warning("%s/config.json is unreadable; the report shows no config", folder)
    if not rows and not (folder / "trials").is_dir():
        raise SystemExit(f"ript report: {folder} has neither metrics.jsonl nor stored trials")
    return Run(folder, rows, config, skipped, _stored_trials(folder / "trials", max_filmstrips))


def _stored_trials(root: Path, max_filmstrips: int) -> list[dict]:
    """Every readable stored trial (the trial store's own loader: verified, plain tensors), with the
    first and last camera frame of up to `max_filmstrips` of them, half successes, half failures."""
    if not root.is_dir():
        return []
    from ript.core.trial_store import TrialStore

    store, trials, wanted = TrialStore(root), [], {1.0: max_filmstrips // 2, 0.0: max_filmstrips - max_filmstrips // 2}
    for folder in sorted(root.glob("iter_*")):
        for stored in store.load(int(folder.name.split("_")[1])):
            entry = {
                "trial_id": stored.trial_id,
                "iteration": stored.iteration,
                "context_id": stored.context_id,
                "reward": stored.reward,
                "reward_source": stored.reward_source,
                "frames": [],
            }
            images = [k for k in stored.trajectory.obs if k.startswith(OBS_IMAGE_PREFIX)]
            if images and wanted.get(stored.reward, 0) > 0:
                wanted[stored.reward] -= 1
                frames = stored.trajectory.obs[images[0]]
                entry["frames"] = [frames[0].numpy(), frames[-1].numpy()]
            trials.append(entry)
    return trials


# ---- figures ------------------------------------------------------------------------------------
def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(r["iteration"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
    return [p[0] for p in points], [float(p[1]) for p in points]


def _keys(rows: list[dict], prefix: str) -> list[str]:
    return sorted({k for r in rows for k in r if k.startswith(prefix)}, key=lambda k: (len(k), k))


def _figure(draw) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=110)
    draw(ax)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # iterations
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _with_ci(ax, rows: list[dict], key: str, count_key: str, label: str) -> None:
    """A success rate per iteration with its Wilson 95 % interval (n from count_key) as a band."""
    xs, ys = _series(rows, key)
    if not xs:
        return
    counts = {r["iteration"]: r[count_key] for r in rows if isinstance(r.get(count_key), (int, float))}
    line = ax.plot(xs, ys, marker="o", markersize=3, label=label)[0]
    bands = [(x, wilson_interval(round(y * counts[x]), int(counts[x]))) for x, y in zip(xs, ys) if counts.get(x, 0) > 0]
    if bands:
        ax.fill_between(
            [b[0] for b in bands],
            [b[1][0] for b in bands],
            [b[1][1] for b in bands],
            color=line.get_color(),
            alpha=0.15,
        )


def figures(run: Run) -> dict[str, bytes]:
    """Name -> PNG for every plot this run has data for."""
    rows, out = run.rows, {}

    def success(ax):
        _with_ci(ax, rows, "rollout/success_rate", "sampler/trials", "sampled trials (training)")
        _with_ci(ax, rows, "eval/success_rate", "eval/episodes", "evaluation")
        for key in _keys(rows, "eval/success_rate/task_"):
            ax.plot(*_series(rows, key), linestyle="--", linewidth=1, label=key.split("/")[-1] + " (eval)")
        for key in _keys(rows, "rollout/success_rate/task_"):
            ax.plot(*_series(rows, key), linestyle=":", linewidth=1, label=key.split("/")[-1] + " (trials)")
        ax.set(xlabel="iteration", ylabel="success", ylim=(-0.02, 1.02), title="Success per iteration (95 % CI)")

    def sampler(ax):
        ax.plot(
            *_series(rows, "sampler/mixed_groups_per_100_trials"),
            marker="o",
            markersize=3,
            label="mixed groups / 100 trials",
        )
        ax.set(xlabel="iteration", title="Informative (mixed) groups")

    def update(ax):
        for key, label in (
            ("stats/approx_kl_final", "KL of the policy the update left"),
            ("stats/approx_kl", "KL during the update (mean)"),
            ("stats/clip_frac", "clip fraction"),
        ):
            ax.plot(*_series(rows, key), marker="o", markersize=3, label=label)
        ax.set(xlabel="iteration", title="How far each update moved")

    def exploration(ax):
        for key in _keys(rows, "policy/scale/dim_"):
            ax.plot(*_series(rows, key), marker=".", label=key.split("/")[-1])
        ax.plot(*_series(rows, "policy/gripper_entropy"), marker="s", markersize=3, label="gripper entropy (nats)")
        ax.set(xlabel="iteration", title="Exploration per action dimension")

    def timing(ax):
        stacked: defaultdict[int, float] = defaultdict(float)  # iteration -> seconds drawn so far
        for key in ("time/rollout_s", "time/update_s", "time/eval_s"):
            xs, ys = _series(rows, key)
            if xs:
                ax.bar(xs, ys, bottom=[stacked[x] for x in xs], label=key.split("/")[1].removesuffix("_s"))
                for x, y in zip(xs, ys):
                    stacked[x] += y
        ax.set(xlabel="iteration", ylabel="seconds", title="Where the time went")

    for name, draw, key in (
        ("success", success, "rollout/success_rate"),
        ("sampler", sampler, "sampler/mixed_groups_per_100_trials"),
        ("update", update, "stats/approx_kl"),
        ("exploration", exploration, "policy/"),
        ("time", timing, "time/"),
    ):
        if any(k.startswith(key) for r in rows for k in r):
            out[name] = _figure(draw)
    return out


def _png(pixels) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    plt.imsave(buffer, pixels, format="png")
    return buffer.getvalue()


# ---- tables ---------------------------------------------------------------------------------------
def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def summary(run: Run) -> list[tuple[str, str]]:
    rows = [r for r in run.rows if r.get("iteration", 0) > 0]
    evals = [r for r in run.rows if isinstance(r.get("eval/success_rate"), (int, float))]
    lines = [("run folder", str(run.folder)), ("iterations", str(max((r["iteration"] for r in rows), default=0)))]
    if run.rows:
        lines.append(("env steps", f"{int(max(r.get('env_steps', 0) for r in run.rows)):,}"))
        spent = {k: sum(r.get(f"time/{k}_s", 0.0) for r in run.rows) for k in ("rollout", "update", "eval")}
        lines.append(
            (
                "wall time",
                f"{_duration(sum(spent.values()))} ("
                + ", ".join(f"{k} {_duration(v)}" for k, v in spent.items())
                + ")",
            )
        )
    if evals:

        def rate(r):
            n = r.get("eval/episodes")
            if not n:
                return f"{r['eval/success_rate']:.0%} at iteration {r['iteration']}"
            low, high = wilson_interval(round(r["eval/success_rate"] * n), int(n))
            return f"{r['eval/success_rate']:.0%} [{low:.0%}, {high:.0%}] of {int(n)} at iteration {r['iteration']}"

        lines.append(("evaluation", f"{rate(evals[0])} → {rate(evals[-1])}"))
    trials = [r for r in rows if "rollout/success_rate" in r]
    if trials:
        lines.append(
            ("sampled success", f"{trials[0]['rollout/success_rate']:.0%} → {trials[-1]['rollout/success_rate']:.0%}")
        )
        mixed = [r["sampler/mixed_groups_per_100_trials"] for r in rows if "sampler/mixed_groups_per_100_trials" in r]
        if mixed:
            lines.append(("mixed groups per 100 trials", f"{sum(mixed) / len(mixed):.1f} (mean over iterations)"))
    if run.trials:
        judges: defaultdict[str, int] = defaultdict(int)
        for trial in run.trials:
            judges[trial["reward_source"] or "unknown"] += 1
        lines.append(
            ("stored trials", f"{len(run.trials)} (" + ", ".join(f"{k}: {v}" for k, v in sorted(judges.items())) + ")")
        )
    if run.skipped_lines:
        lines.append(("damaged metrics lines", f"{run.skipped_lines} skipped"))
    return lines


def per_context(run: Run) -> list[tuple[str, str, str]]:
    """context -> trials, successes (from stored trials)."""
    by_context = defaultdict(list)
    for trial in run.trials:
        by_context[trial["context_id"]].append(trial["reward"])
    return [(c, str(len(r)), f"{sum(r) / len(r):.0%}") for c, r in sorted(by_context.items())]


def flat_config(config: dict, prefix: str = "") -> list[tuple[str, str]]:
    items = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items += flat_config(value, name + ".")
        else:
            items.append((name, json.dumps(value) if not isinstance(value, str) else value))
    return items


# ---- writing --------------------------------------------------------------------------------------
def _table(rows, header) -> tuple[str, str]:
    """The same table as HTML and as markdown."""
    cells = lambda r, tag: "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in r)
    page = f"<table><tr>{cells(header, 'th')}</tr>" + "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows) + "</table>"
    md = (
        "| "
        + " | ".join(header)
        + " |\n|"
        + "---|" * len(header)
        + "\n"
        + "".join("| " + " | ".join(str(c).replace("|", "/") for c in r) + " |\n" for r in rows)
    )
    return page, md


STYLE = (
    "body{font:14px system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}"
    "h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}"
    "img.plot{max-width:100%}figure{display:inline-block;margin:.3em}figcaption{font-size:12px}"
    "img.frame{width:160px;image-rendering:pixelated}"
)


def write_report(folder: str | Path, out: str | Path | None = None) -> Path:
    """Write report.html and report.md for the run in `folder` (into `out`, default the run
    folder itself); returns the HTML page's path."""
    run = read_run(folder)
    out = Path(out) if out else run.folder
    files = out / "report_files"
    files.mkdir(parents=True, exist_ok=True)
    title = f"ript run {run.folder.name}"
    page = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
    ]
    md = [f"# {title}\n"]

    def section(name: str) -> None:
        page.append(f"<h2>{name}</h2>")
        md.append(f"\n## {name}\n")

    def table(rows, header) -> None:
        as_html, as_md = _table(rows, header)
        page.append(as_html)
        md.append(as_md)

    section("Summary")
    table(summary(run), ("", ""))
    plots = figures(run)
    if plots:
        section("Curves")
        for name, png in plots.items():
            (files / f"{name}.png").write_bytes(png)
            page.append(f"<img class='plot' alt='{name}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
            md.append(f"![{name}](report_files/{name}.png)\n")
    if run.trials:
        section("Success per context (stored trials)")
        table(per_context(run), ("context", "trials", "success"))
        strips = [t for t in run.trials if t["frames"]]
        section("Trials, first and last frame")
        if not strips:
            page.append("<p>This run rendered no camera images.</p>")
            md.append("This run rendered no camera images.\n")
        for trial in strips:
            caption = (
                f"{trial['trial_id']}: {'success' if trial['reward'] else 'failure'} "
                f"(judged by {trial['reward_source'] or 'unknown'})"
            )
            page.append(
                "<figure>"
                + "".join(
                    f"<img class='frame' alt='{html.escape(trial['trial_id'])} {which}' "
                    f"src='data:image/png;base64,{base64.b64encode(_png(frame)).decode()}'>"
                    for which, frame in zip(("first", "last"), trial["frames"])
                )
                + f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
            for which, frame in zip(("first", "last"), trial["frames"]):
                (files / f"{trial['trial_id']}_{which}.png").write_bytes(_png(frame))
            md.append(
                f"{caption}: ![first](report_files/{trial['trial_id']}_first.png) "
                f"![last](report_files/{trial['trial_id']}_last.png)\n"
            )
    if run.config:
        section("Configuration")
        table(flat_config(run.config), ("setting", "value"))
    page.append("</body></html>")
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text("\n".join(md))
    path = out / "report.html"
    path.write_text("".join(page))
    return path
