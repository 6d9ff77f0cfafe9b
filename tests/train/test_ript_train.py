"""`ript train` on a real LIBERO task: a tiny state-mode policy, 2 contexts, K=2, short episodes.
It completes iterations, writes checkpoints, and a resumed run continues from the last one; Ctrl-C
stops it cleanly; the tokenized head runs through the same loop."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ript.core.safe_io import load_verified
from ript.policies.checkpoint import load_checkpoint, save_checkpoint
from ript.policies.config import VLAConfig
from ript.policies.libero_data import state_dim as libero_state_dim
from ript.policies.vla import build_policy

pytestmark = pytest.mark.slow


def tiny_config(head: str) -> VLAConfig:
    from ript.sim.env import LiberoEnvConfig

    state_dim = libero_state_dim(LiberoEnvConfig().object_state_dim)
    return VLAConfig(
        input_mode="state",
        state_dim=state_dim,
        use_language=False,
        hidden_dim=32,
        num_layers=1,
        num_heads=2,
        chunk_size=4,
        execute_steps=4,
        head=head,
        tokenized={"fsq_levels": (5, 5), "tokens_per_chunk": 2, "tokenizer_hidden_dim": 32},
    )


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    save_checkpoint(path, build_policy(tiny_config("regression")))
    return path


def ript_train(*args):
    return subprocess.run(
        [sys.executable, "-m", "ript.cli.main", "train", "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_train_iterates_checkpoints_and_resumes(tiny_checkpoint, tmp_path):
    settings = [
        "--set",
        "contexts_per_task=2",
        "--set",
        "eval_episodes_per_task=1",
        "--set",
        "max_steps=24",
        "--set",
        "num_envs=2",
        "--set",
        "train.sampler.group_size=2",
        "--set",
        "train.sampler.batch_size=2",
        "--set",
        "train.sampler.dynamic=false",
        "--set",
        "train.eval_every=2",
        "--set",
        "train.iterations=1",
        "--set",
        "exploration_scale=3.0",
        "--set",
        "execute_steps=2",
        "--set",
        "eval_on=validation",
    ]
    first = ript_train("--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path), *settings)
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = next(tmp_path.iterdir())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1]
    assert rows[1]["sampler/trials"] == 2 and rows[1]["env_steps"] == 2 * 24
    # Sampling and re-scoring use the same distribution: the PPO ratio starts at 1.
    assert "loss/policy" in rows[1] and rows[1]["stats/ratio_mean"] == pytest.approx(1.0, abs=1e-3)
    # Where the update left the policy, and how it now explores (per dimension; the gripper's entropy).
    assert rows[1]["stats/approx_kl_final"] >= 0.0
    assert rows[1]["policy/scale/dim_0"] == pytest.approx(3.0 * 0.1, rel=0.05)
    assert 0.0 < rows[1]["policy/gripper_entropy"] <= math.log(2) + 1e-6
    assert (run_dir / "checkpoints" / "iter_000001.ckpt").exists()
    # the run's report is written at the end and its path printed (the page itself: tests/trainer/test_report.py)
    assert f"report: {run_dir / 'report.html'}" in first.stdout
    assert "evaluation</td><td>" in (run_dir / "report.html").read_text()
    policy, _ = load_checkpoint(run_dir / "policy_final.ckpt")
    assert policy.config.input_mode == "state"
    assert policy.config.execute_steps == 2  # the run's setting, kept with the weights it trained
    # An iteration checkpoint loads as a policy too (`ript eval` on any iterate): here the same weights.
    iterate, _ = load_checkpoint(run_dir / "checkpoints" / "iter_000001.ckpt")
    for name, value in policy.state_dict().items():
        assert torch.equal(iterate.state_dict()[name], value), name
    assert iterate.exploration_scale == policy.exploration_scale == 3.0

    # The evaluation ran on validation placements: kept in the run folder, apart from the contexts
    # trained on and from the benchmark's states; the best evaluation's weights are policy_best.ckpt.
    from ript.sim.contexts import distance_to_set, load_contexts
    from ript.sim.env import benchmark_init_states

    validation = load_contexts(run_dir / "validation_contexts.npz")
    trained = load_contexts(run_dir / "contexts.npz")
    assert len(validation) == 1 and rows[1]["eval/episodes"] == 1
    for context in validation:
        assert distance_to_set(context.init_state, benchmark_init_states("libero_spatial", 0)) > 1e-3
        assert distance_to_set(context.init_state, [c.init_state for c in trained]) > 1e-3
    best_iteration = max(rows, key=lambda r: (r["eval/success_rate"], r["iteration"]))["iteration"]
    assert f"best policy: {run_dir / 'policy_best.ckpt'} (iteration {best_iteration}," in first.stdout
    assert "on validation states" in first.stdout
    best, payload = load_checkpoint(run_dir / "policy_best.ckpt")
    assert payload["metadata"]["ript_iterations"] == best_iteration
    best_state = load_verified(run_dir / "checkpoints" / "best.ckpt")["policy"]
    for name, value in best.state_dict().items():
        assert torch.equal(best_state[name], value), name

    # Extend the same run to 2 iterations at another lr: it must continue from iteration 1, not start
    # over, and the new lr must reach the optimizer (whose saved state carries the old one).
    locked = ript_train("--resume", str(run_dir), "--set", "task_ids=[1]")
    assert locked.returncode != 0 and "task_ids" in locked.stderr and "start a new run" in locked.stderr
    second = ript_train("--resume", str(run_dir), "--set", "train.iterations=2", "--set", "train.learning_rate=4e-5")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from iter_000001.ckpt" in second.stderr
    # the contexts it trained on, read back rather than drawn again (a hard reset each)
    assert f"read 2 training contexts from {run_dir / 'contexts.npz'}" in second.stderr
    assert f"read 1 validation contexts from {run_dir / 'validation_contexts.npz'}" in second.stderr
    # a new run may train on them (`--contexts`) only if it draws the same: here 3 per task, refused
    other = ript_train("--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "other"), "--contexts",
                       str(run_dir / "contexts.npz"), *settings, "--set", "contexts_per_task=3")  # fmt: skip
    assert other.returncode != 0 and "ript train: --contexts: cannot train on the contexts" in other.stderr
    assert "this run needs" in other.stderr and not (tmp_path / "other").exists()
    assert "train.iterations: 1 -> 2" in second.stdout and "train.learning_rate: 2e-05 -> 4e-05" in second.stdout
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["train"]["iterations"] == 2 and saved["libero"]["train"]["learning_rate"] == 4e-5
    state = load_verified(run_dir / "checkpoints" / "iter_000002.ckpt")
    assert [group["lr"] for group in state["optimizer"]["param_groups"]] == [4e-5]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert rows[2]["env_steps"] == 2 * 2 * 24
    assert "eval/success_rate" in rows[2]


@pytest.mark.timeout(300)
def test_ctrl_c_stops_the_run_cleanly_with_its_final_policy(tiny_checkpoint, tmp_path):
    """Ctrl-C (SIGINT to the whole process group, LIBERO workers included) ends the run after the
    rollout call or update in progress: the last iteration's weights as policy_final.ckpt, exit
    128 + SIGINT (unfinished), and no worker killed by it (they leave the stop to the trainer)."""
    settings = ["contexts_per_task=2", "eval_episodes_per_task=0", "max_steps=24", "num_envs=2",
                "train.sampler.group_size=2", "train.sampler.batch_size=2", "train.sampler.dynamic=false",
                "train.eval_every=0", "train.iterations=500"]  # fmt: skip
    command = [sys.executable, "-m", "ript.cli.main", "train", "--no-progress", "--checkpoint", str(tiny_checkpoint)]
    command += ["--out", str(tmp_path)] + [arg for item in settings for arg in ("--set", item)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 150
        while time.time() < deadline and not list(tmp_path.glob("*/checkpoints/iter_000002.ckpt")):
            time.sleep(0.05)
        time.sleep(0.5)  # into iteration 3's rollout (an iteration here takes ~3 s): the workers are stepping
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:  # never leave a 500-iteration run on the machine
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGINT, stderr[-3000:]  # outputs written, the run unfinished
    run_dir = next(tmp_path.iterdir())
    done = max(int(p.stem.split("_")[1]) for p in (run_dir / "checkpoints").glob("iter_*.ckpt"))
    assert 2 <= done < 500, "the run was not stopped by the signal; the test proves nothing"
    assert f"stopped by SIGINT after iteration {done}; continue with: ript train --resume {run_dir}" in stdout
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    policy, payload = load_checkpoint(run_dir / "policy_final.ckpt")
    assert payload["metadata"]["ript_iterations"] == done
    iterate, _ = load_checkpoint(run_dir / "checkpoints" / f"iter_{done:06d}.ckpt")
    for name, value in policy.state_dict().items():
        assert torch.equal(iterate.state_dict()[name], value), name


def test_an_averaging_run_exports_and_evaluates_its_average(tiny_checkpoint, tmp_path):
    """train.average_decay: policy_final, policy_best and every iteration checkpoint (as `ript eval`
    loads it) hold the averaged weights; the checkpoint keeps the trained ones for resuming."""
    # 24-step trials all fail (no advantage): weight decay is what moves the trained weights here
    settings = ["contexts_per_task=2", "eval_episodes_per_task=1", "max_steps=24", "num_envs=2",
                "train.sampler.group_size=2", "train.sampler.batch_size=2", "train.sampler.dynamic=false",
                "train.eval_every=1", "train.iterations=1", "exploration_scale=3.0", "eval_on=validation",
                "train.average_decay=0.5", "train.learning_rate=1e-3", "train.weight_decay=1.0"]  # fmt: skip
    done = ript_train("--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path),
                      *[arg for item in settings for arg in ("--set", item)])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = next(tmp_path.iterdir())
    last = load_verified(run_dir / "checkpoints" / "iter_000001.ckpt")
    final, _ = load_checkpoint(run_dir / "policy_final.ckpt")
    iterate, _ = load_checkpoint(run_dir / "checkpoints" / "iter_000001.ckpt")
    trained_differs = False
    for name, value in final.state_dict().items():
        assert torch.equal(last["policy_average"][name], value), name
        assert torch.equal(iterate.state_dict()[name], value), name
        trained_differs |= not torch.equal(last["policy"][name], value)
    assert trained_differs, "the average equals the trained weights: nothing was tested"
    best = load_verified(run_dir / "checkpoints" / "best.ckpt")
    exported, _ = load_checkpoint(run_dir / "policy_best.ckpt")
    for name, value in exported.state_dict().items():
        assert torch.equal(best["policy_average"][name], value), name


def test_tokenized_head_trains_with_top_k_sampling(tmp_path):
    checkpoint = tmp_path / "tokenized.ckpt"
    save_checkpoint(checkpoint, build_policy(tiny_config("tokenized")))
    settings = [
        "--set",
        "contexts_per_task=2",
        "--set",
        "eval_episodes_per_task=0",
        "--set",
        "max_steps=16",
        "--set",
        "num_envs=2",
        "--set",
        "train.sampler.group_size=2",
        "--set",
        "train.sampler.batch_size=2",
        "--set",
        "train.sampler.dynamic=false",
        "--set",
        "train.eval_every=0",
        "--set",
        "train.iterations=1",
        "--set",
        "temperature=1.5",
        "--set",
        "top_k=5",
    ]
    run = ript_train("--checkpoint", str(checkpoint), "--out", str(tmp_path / "run"), *settings)
    assert run.returncode == 0, run.stderr[-3000:]
    run_dir = next((tmp_path / "run").iterdir())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["iteration"] == 1 and rows[-1]["env_steps"] == 2 * 16
    # Top-k tokens sampled at temperature 1.5 are re-scored under that same truncated distribution:
    # the first ratio is 1 (scoring the full softmax, as the reference code does, would not give 1).
    assert rows[-1]["stats/ratio_mean"] == pytest.approx(1.0, abs=1e-3)
    assert math.isfinite(rows[-1]["loss/policy"])
    policy, _ = load_checkpoint(run_dir / "policy_final.ckpt")
    assert policy.config.head == "tokenized"
    assert (policy.config.tokenized.temperature, policy.config.tokenized.top_k) == (1.5, 5)


def test_train_runs_its_trials_on_ray_workers(tiny_checkpoint, tmp_path):
    """`ript train --set rollout_backend=ray`: a local Ray cluster on 127.0.0.1, two rollout workers,
    one iteration with the same accounting as the local backend."""
    pytest.importorskip("ray")
    result = ript_train(
        "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path),
        "--set", "contexts_per_task=2", "--set", "eval_episodes_per_task=1", "--set", "max_steps=16",
        "--set", "train.sampler.group_size=2", "--set", "train.sampler.batch_size=2",
        "--set", "train.sampler.dynamic=false", "--set", "train.iterations=1", "--set", "train.eval_every=1",
        "--set", "rollout_backend=ray", "--set", "ray.num_workers=2", "--set", "eval_on=benchmark",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = next(tmp_path.iterdir())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1]
    assert rows[1]["sampler/trials"] == 2 and rows[1]["env_steps"] == 2 * 16
    assert rows[1]["stats/ratio_mean"] == pytest.approx(1.0, abs=1e-3)  # workers sample what the learner scores
    assert rows[1]["eval/episodes"] == 1.0
    assert json.loads((run_dir / "config.json").read_text())["libero"]["ray"]["num_workers"] == 2


def test_a_hugging_face_vla_trains_on_rendered_libero(tmp_path):
    """policy.type=hf_vla (a tiny SmolVLM-architecture VLM built and saved locally, LoRA rank 4):
    one LOOP iteration on real LIBERO camera frames, sampled and re-scored alike; the run's
    checkpoints hold no base weights (which parameters an update moves: tests/policy/test_hf_vla.py)."""
    from ript.policies.hf_backbones import build_backbone
    from ript.policies.hf_vla import HFVLAConfig, HFVLAPolicy

    backbone = build_backbone("smolvlm", "tiny", tmp_path / "smolvlm")
    torch.manual_seed(0)
    policy = HFVLAPolicy(
        HFVLAConfig(
            backbone=str(backbone), hidden_dim=32, num_layers=1, num_heads=2, chunk_size=4, image_size=32,
            max_prompt_tokens=64, lora={"rank": 4, "alpha": 8},
        )
    )  # fmt: skip
    checkpoint = save_checkpoint(tmp_path / "hf.ckpt", policy)
    result = ript_train(
        "--checkpoint", str(checkpoint), "--out", str(tmp_path / "run"),
        "--set", "contexts_per_task=2", "--set", "eval_episodes_per_task=0", "--set", "max_steps=12",
        "--set", "num_envs=2", "--set", "train.sampler.group_size=2", "--set", "train.sampler.batch_size=2",
        "--set", "train.sampler.dynamic=false", "--set", "train.eval_every=0", "--set", "train.iterations=1",
        "--set", "exploration_scale=3.0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = next((tmp_path / "run").iterdir())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["iteration"] == 1 and rows[-1]["env_steps"] == 2 * 12
    assert rows[-1]["stats/ratio_mean"] == pytest.approx(1.0, abs=1e-3)
    assert math.isfinite(rows[-1]["loss/policy"]) and rows[-1]["policy/scale/dim_0"] > 0
    trained, payload = load_checkpoint(run_dir / "policy_final.ckpt")
    assert payload["policy_type"] == "hf_vla" and isinstance(trained, HFVLAPolicy)
    assert any(".lora_" in k for k in payload["state_dict"])
    assert not any(k.startswith("encoder.vlm.") and ".lora_" not in k for k in payload["state_dict"])
