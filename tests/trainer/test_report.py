"""`ript report` on the run folders ript writes: a real `ript toy` run and a run folder of the ROS
trainer's core (metrics + stored trials, some with camera frames), read in headless Chromium; a
damaged metrics line is skipped and counted, a folder that is no run is refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ript.core.constants import OBS_STATE
from ript.core.interactive import ContextInfo, InteractiveTrainer
from ript.core.learner import TrainConfig
from ript.core.loop import LoopConfig
from ript.core.report import read_run, write_report
from ript.core.sampler import SamplerConfig
from ript.core.trial_store import StoredTrial, TrialStore
from ript.core.trials import Trajectory

AGENTVIEW = "observation.images.agentview"


def ript(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ript.cli.main", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toy")
    result = ript("toy", "--iterations", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "report:  " in result.stdout  # `ript toy` writes the report itself and says where
    return next(out.iterdir())


@pytest.fixture(scope="module")
def ros_run(tmp_path_factory) -> Path:
    """What the ROS trainer node leaves: one LOOP iteration from stored trials, plus stored trials
    of the open iteration with camera frames (an image-mode policy's trajectories)."""
    from ript.core.safe_io import save_verified
    from ript.policies.config import VLAConfig
    from ript.policies.vla import build_policy

    run_dir = tmp_path_factory.mktemp("ros") / "run"
    torch.manual_seed(0)
    policy = build_policy(
        VLAConfig(
            input_mode="state",
            state_dim=5,
            use_language=False,
            hidden_dim=16,
            num_layers=1,
            num_heads=2,
            chunk_size=4,
            execute_steps=4,
        )
    ).eval()
    config = TrainConfig(
        iterations=2,
        learning_rate=1e-2,
        eval_every=0,
        sampler=SamplerConfig(group_size=2, batch_size=4, dynamic=True),
        loop=LoopConfig(ppo_epochs=1, minibatch_size=12),
    )
    trainer = InteractiveTrainer(
        policy,
        [ContextInfo(f"ctx{i}", f"task {i}") for i in range(2)],
        config,
        run_dir,
        lambda path: save_verified(policy.state_dict(), path),
        run_dir / "initial.ckpt",
    )

    def trajectory(seed: int, images: bool = False) -> Trajectory:
        gen = torch.Generator().manual_seed(seed)
        obs = {OBS_STATE: torch.randn(3, 5, generator=gen)}
        with torch.no_grad():
            sample = policy.sample(obs, generator=gen)
        if images:  # a bright first frame, a dark last one
            obs[AGENTVIEW] = torch.stack([torch.full((16, 16, 3), v, dtype=torch.uint8) for v in (250, 120, 10)])
        return Trajectory(
            obs=obs,
            scored=sample.scored,
            log_probs=sample.log_probs,
            mask=torch.ones_like(sample.log_probs, dtype=torch.bool),
            num_steps=12,
        )

    for n, reward in enumerate([1.0, 0.0, 0.0, 1.0]):
        ticket = trainer.next_trial()
        trainer.on_reward(ticket.trial_id, reward, "operator" if n % 2 else "simulator")
        assert trainer.on_trajectory(ticket.trial_id, trajectory(n)).trial_stored
    assert trainer.iteration == 1
    trainer.close()
    store = TrialStore(run_dir / "trials")
    for n, reward in enumerate([1.0, 0.0]):
        store.save(
            StoredTrial(
                f"it0002-g000-c000-k{n}-aaaaa{n}",
                2,
                0,
                0,
                "ctx0",
                reward,
                "classifier",
                1,
                trajectory(10 + n, images=True),
            )
        )
    return run_dir


def test_report_of_a_ros_run_shows_contexts_judges_and_frames(ros_run, tmp_path):
    page = write_report(ros_run, tmp_path / "out").read_text()
    run = read_run(ros_run)
    assert len(run.trials) == 6 and sum(1 for t in run.trials if t["frames"]) == 2
    assert "stored trials</td><td>6 (classifier: 2, operator: 2, simulator: 2)" in page
    assert "<td>ctx0</td>" in page and "<td>ctx1</td>" in page
    assert page.count("class='frame'") == 4  # first and last frame of one success and one failure
    first, last = run.trials[4]["frames"]
    assert first.mean() == 250 and last.mean() == 10
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "## Success per context (stored trials)" in markdown
    for name in ("success", "update", "time"):
        assert (tmp_path / "out" / "report_files" / f"{name}.png").stat().st_size > 1000
        assert f"![{name}](report_files/{name}.png)" in markdown


def test_damaged_metrics_lines_are_counted_and_a_non_run_refused(toy_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(toy_run, copy)
    with (copy / "metrics.jsonl").open("a") as f:
        f.write('{"iteration": 4, "rollout/succ\n[1, 2]\n')
    run = read_run(copy)
    assert run.skipped_lines == 2 and [r["iteration"] for r in run.rows] == [0, 1, 2, 3]
    assert "damaged metrics lines</td><td>2 skipped" in write_report(copy).read_text()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="neither metrics.jsonl nor stored trials"):
        read_run(tmp_path / "empty")
    result = ript("report", str(tmp_path / "nope"))
    assert result.returncode != 0 and "is not a run folder" in result.stderr


@pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="needs Debian's chromium and chromium-driver (scripts/apt-packages.txt)",
)
def test_reports_render_in_a_browser(toy_run, ros_run, tmp_path, browser):
    """Every plot and frame of the self-contained page decodes in Chromium (no file beside it is
    needed: the page is copied alone to another folder first)."""
    for name, folder in (("toy", toy_run), ("ros", ros_run)):
        result = ript("report", str(folder))
        assert result.returncode == 0, result.stderr[-2000:]
        alone = tmp_path / name / "report.html"
        alone.parent.mkdir()
        shutil.copyfile(folder / "report.html", alone)
        browser.get(alone.as_uri())
        images = browser.execute_script(
            "return [...document.images].map(i => [i.alt, i.complete && i.naturalWidth > 0]);"
        )
        assert len(images) >= 3 and all(ok for _, ok in images), images
        headings = [h.text for h in browser.find_elements("tag name", "h2")]
        assert headings[:2] == ["Summary", "Curves"] and "Configuration" in headings, headings
        summary = browser.find_element("tag name", "table").text
        assert "iterations" in summary and "env steps" in summary
