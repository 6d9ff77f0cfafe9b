"""A run killed with SIGKILL resumes from its last completed iteration with the same results; one
stopped with SIGTERM ends cleanly (report written, exit 128 + SIGTERM) and resumes the same way; corrupt
checkpoints are detected, reported and skipped."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ript.core.safe_io import CorruptFileError, load_verified, save_verified
from ript.sim.toy_task import ReachTrainConfig, make_reach_trainer


def small_config(iterations):
    config = ReachTrainConfig()
    config.train.iterations = iterations
    config.train.sampler.batch_size = 32
    config.train.parallel_groups = 2  # several rollout calls per iteration: seeds must follow them
    return config


def run_to_end(run_dir, iterations):
    trainer = make_reach_trainer(small_config(iterations), run_dir, tensorboard=False)
    trainer.resume()
    history = trainer.run(progress=False)
    trainer.close()
    return trainer, history


def strip_times(rows):
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows]


def test_resume_in_process_matches_uninterrupted(tmp_path):
    straight, straight_history = run_to_end(tmp_path / "straight", 4)
    run_to_end(tmp_path / "split", 2)
    resumed, resumed_history = run_to_end(tmp_path / "split", 4)
    assert strip_times(resumed_history) == strip_times(straight_history)
    for key, value in straight.policy.state_dict().items():
        torch.testing.assert_close(resumed.policy.state_dict()[key], value, rtol=0, atol=0)


ITERATIONS = 20  # a toy iteration takes ~0.2 s: enough of them that a loaded machine signals mid-run
TOY_CLI = [sys.executable, "-m", "ript.cli.main", "toy", "--iterations", str(ITERATIONS), "--batch-size", "32"]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """The toy run, uninterrupted."""
    out = tmp_path_factory.mktemp("reference")
    subprocess.run(TOY_CLI + ["--out", str(out)], check=True, capture_output=True, timeout=120)
    return next(out.iterdir())


def metric_rows(path):
    return strip_times([json.loads(line) for line in path.read_text().splitlines()])


def start_then_signal(run_dir, number):
    """Starts the toy run in run_dir and sends it `number` once 2 iterations are logged; returns
    the process (not yet waited for) and the metrics file."""
    proc = subprocess.Popen(
        TOY_CLI + ["--resume", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 90
    while time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    os.kill(proc.pid, number)
    return proc, metrics


@pytest.mark.timeout(180)
def test_sigkill_then_resume_gives_the_same_run(tmp_path, reference_run):
    killed_dir = tmp_path / "killed"
    proc, metrics = start_then_signal(killed_dir, signal.SIGKILL)
    proc.communicate()
    done_before_kill = len(metrics.read_text().splitlines())
    assert done_before_kill < ITERATIONS + 1, "the run finished before it could be killed; the test proves nothing"

    result = subprocess.run(TOY_CLI + ["--resume", str(killed_dir)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "resumed" in result.stdout
    assert metric_rows(metrics) == metric_rows(reference_run / "metrics.jsonl")


@pytest.mark.timeout(180)
def test_sigterm_stops_cleanly_and_resume_gives_the_same_run(tmp_path, reference_run):
    stopped_dir = tmp_path / "stopped"
    proc, metrics = start_then_signal(stopped_dir, signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr  # outputs written, the run unfinished
    done = len(metrics.read_text().splitlines()) - 1
    assert done < ITERATIONS, "the run finished before it was stopped; the test proves nothing"
    assert f"stopped by SIGTERM; continue with: ript toy --resume {stopped_dir}" in stdout
    assert f"after {done} iterations" in stdout
    assert (stopped_dir / "report.md").exists() and (stopped_dir / "learning_curve.png").exists()
    assert sorted(p.name for p in (stopped_dir / "checkpoints").glob("iter_*.ckpt"))[-1] == f"iter_{done:06d}.ckpt"

    result = subprocess.run(TOY_CLI + ["--resume", str(stopped_dir)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert metric_rows(metrics) == metric_rows(reference_run / "metrics.jsonl")


def test_a_stop_while_collecting_drops_the_open_iteration(tmp_path):
    """A stop between two rollout calls of iteration 3 leaves iteration 2's weights and nothing of 3;
    the resumed run redraws iteration 3's trials and ends as the uninterrupted one does."""
    straight, straight_history = run_to_end(tmp_path / "straight", 4)
    trainer = make_reach_trainer(small_config(4), tmp_path / "split", tensorboard=False)
    calls = []

    def stop_in_iteration_3(state, detail):
        if state == "collecting" and trainer.iteration == 2:
            calls.append(detail)
            if detail.startswith("collecting"):  # after iteration 3's first rollout call
                trainer.request_stop("test")

    trainer.on_status = stop_in_iteration_3
    history = trainer.run(progress=False)
    trainer.close()
    assert trainer.stop_reason == "test" and trainer.iteration == 2 and len(history) == 3
    assert trainer.env_steps == history[-1]["env_steps"], "the dropped trials were counted"
    assert len(calls) >= 2, "the stop came before iteration 3 collected anything; the test proves nothing"
    after_two = make_reach_trainer(small_config(2), tmp_path / "two", tensorboard=False)
    after_two.run(progress=False)
    after_two.close()
    for key, value in after_two.policy.state_dict().items():
        torch.testing.assert_close(trainer.policy.state_dict()[key], value, rtol=0, atol=0)
    assert sorted(p.name for p in (tmp_path / "split" / "checkpoints").glob("iter_*.ckpt"))[-1] == "iter_000002.ckpt"

    resumed, resumed_history = run_to_end(tmp_path / "split", 4)
    assert strip_times(resumed_history) == strip_times(straight_history)
    for key, value in straight.policy.state_dict().items():
        torch.testing.assert_close(resumed.policy.state_dict()[key], value, rtol=0, atol=0)


def test_corrupt_checkpoint_is_reported_and_skipped(tmp_path, caplog):
    run_to_end(tmp_path, 3)
    checkpoints = sorted((tmp_path / "checkpoints").glob("iter_*.ckpt"))
    assert [p.name for p in checkpoints] == ["iter_000002.ckpt", "iter_000003.ckpt"]
    newest = checkpoints[-1]
    newest.write_bytes(newest.read_bytes()[:-100])  # a partial write
    with pytest.raises(CorruptFileError, match="checksum mismatch"):
        load_verified(newest)
    trainer = make_reach_trainer(small_config(3), tmp_path, tensorboard=False)
    with caplog.at_level("ERROR"):
        assert trainer.resume()
    assert trainer.iteration == 2
    assert "corrupt checkpoint" in caplog.text and newest.name in caplog.text
    assert newest.with_suffix(".corrupt").exists()


def test_safe_io_rejects_garbage_and_round_trips(tmp_path):
    path = tmp_path / "x.ckpt"
    digest = save_verified({"a": torch.arange(3)}, path)
    assert len(digest) == 64
    torch.testing.assert_close(load_verified(path)["a"], torch.arange(3))
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CorruptFileError, match="not a ript checkpoint"):
        load_verified(tmp_path / "junk.ckpt")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # one flipped bit
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError):
        load_verified(path)
    assert not list(tmp_path.glob(".*.tmp")), "no temporary files left behind"


def test_a_stop_during_the_last_update_ends_nothing_early(tmp_path):
    """A stop that arrives while the last iteration updates is not reported as an early stop."""
    trainer = make_reach_trainer(small_config(2), tmp_path, tensorboard=False)

    def stop_while_updating(state, detail):
        if state == "updating" and trainer.iteration == 1:
            trainer.request_stop("test")

    trainer.on_status = stop_while_updating
    trainer.run(progress=False)
    trainer.close()
    assert trainer.iteration == 2 and trainer.stop_reason is None
