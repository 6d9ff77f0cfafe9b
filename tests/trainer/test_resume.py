"""A run killed with SIGKILL resumes from its last completed iteration with the same results;
corrupt checkpoints are detected, reported and skipped."""

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


@pytest.mark.timeout(180)
def test_sigkill_then_resume_gives_the_same_run(tmp_path):
    cli = [sys.executable, "-m", "ript.cli.main", "toy", "--iterations", "6", "--batch-size", "32"]
    subprocess.run(cli + ["--out", str(tmp_path / "ref")], check=True, capture_output=True, timeout=120)
    reference_dir = next((tmp_path / "ref").iterdir())

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(cli + ["--resume", str(killed_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = killed_dir / "metrics.jsonl"
    deadline = time.time() + 90
    while time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before_kill = len(metrics.read_text().splitlines())
    assert done_before_kill < 7, "the run finished before it could be killed; the test proves nothing"

    result = subprocess.run(cli + ["--resume", str(killed_dir)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "resumed" in result.stdout

    def rows(path):
        return strip_times([json.loads(line) for line in path.read_text().splitlines()])

    assert rows(metrics) == rows(reference_dir / "metrics.jsonl")


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
