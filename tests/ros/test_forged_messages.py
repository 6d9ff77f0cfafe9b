"""A hostile peer on the DDS domain against the real trainer node (its own process, real DDS).

The peer (this test) forges TrialRecords naming files it wrote: a pickle payload that would run
code, a file outside the trainer's trajectory folder, a payload that is not a trajectory, and a
record for a trial that does not exist. Each must be refused with a logged reason (the pending
trial aborted, so its group gets another), no code may run, and the trainer must keep serving
trials afterwards.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import pytest
import torch
import yaml
from node_process import NodeProcess
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


class WritesMarker:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def forge(obj, path: Path) -> str:
    """A file in safe_io's format with a matching digest; returns the digest."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIPT1\n" + digest.encode() + b"\n" + payload)
    return digest


@pytest.fixture
def trainer(tmp_path, ros_env):
    from ript.policies.checkpoint import save_checkpoint
    from ript.policies.config import VLAConfig
    from ript.policies.vla import build_policy

    torch.manual_seed(0)
    config = VLAConfig(
        input_mode="state",
        state_dim=5,
        use_language=False,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        chunk_size=4,
        execute_steps=4,
    )
    save_checkpoint(tmp_path / "tiny.ckpt", build_policy(config))
    (tmp_path / "contexts.yaml").write_text(
        yaml.safe_dump([{"context_id": "c0", "instruction": "task 0"}, {"context_id": "c1", "instruction": "task 1"}])
    )
    node = NodeProcess(
        "ript.ros.trainer_node",
        tmp_path / "trainer.log",
        checkpoint=tmp_path / "tiny.ckpt",
        contexts_file=tmp_path / "contexts.yaml",
        run_dir=tmp_path / "run",
        wait_for_subscribers=1,
        group_size=2,
        batch_size=4,
        trial_timeout_s=60.0,
    )
    yield node
    node.stop()


def test_forged_trial_records_run_no_code_and_stop_nothing(ros, tmp_path, trainer):
    from ript_interfaces.msg import TrialRecord, TrialStart

    starts: list[TrialStart] = []
    aborted: list[str] = []
    ros.node.create_subscription(TrialStart, "/ript/trial_start", starts.append, RELIABLE)
    ros.node.create_subscription(String, "/ript/trial_aborted", lambda m: aborted.append(m.data), RELIABLE)
    record_pub = ros.node.create_publisher(TrialRecord, "/policy/trial_record", RELIABLE)
    incoming = tmp_path / "run" / "incoming"
    marker = tmp_path / "code-ran"

    def send(trial_id: str, path: Path, digest: str) -> None:
        record_pub.publish(
            TrialRecord(
                trial_id=trial_id,
                path=str(path),
                sha256=digest,
                num_steps=4,
                num_queries=1,
                stochastic=True,
                message="recorded",
            )
        )

    def next_start(count: int) -> TrialStart:
        assert ros.spin_until(lambda: len(starts) >= count or trainer.proc.poll() is not None, 60.0), (
            f"no trial {count} started:\n{trainer.output()[-3000:]}"
        )
        assert trainer.proc.poll() is None, f"trainer exited {trainer.proc.returncode}:\n{trainer.output()[-3000:]}"
        return starts[count - 1]

    def expect_abort(trial_id: str, why: str) -> None:
        # the abort and the log line saying why travel separately (topic vs the process's stderr pipe)
        assert ros.spin_until(
            lambda: (trial_id in aborted and why in trainer.output()) or trainer.proc.poll() is not None, 30.0
        ), f"{trial_id} not aborted with {why!r}:\n{trainer.output()[-3000:]}"
        assert trainer.proc.poll() is None, f"trainer exited {trainer.proc.returncode}:\n{trainer.output()[-3000:]}"

    first = next_start(1)
    bomb = {"kind": "ript-trajectory", "trial_id": first.trial_id, "obs": WritesMarker(marker)}
    # A record for a trial that does not exist: judged by its id, its file never opened.
    send(
        "it0001-forged",
        incoming / "stray.traj",
        forge({"trial_id": "it0001-forged", "x": WritesMarker(marker)}, incoming / "stray.traj"),
    )
    # The running trial's id with a pickle payload and a matching digest.
    send(first.trial_id, incoming / "bomb.traj", forge(bomb, incoming / "bomb.traj"))
    expect_abort(first.trial_id, "payload refused, not plain tensors")
    assert "trajectory for unknown trial 'it0001-forged'" in trainer.output()

    second = next_start(2)
    outside = tmp_path / "elsewhere" / "t.traj"
    send(second.trial_id, outside, forge({"trial_id": second.trial_id}, outside))
    expect_abort(second.trial_id, "the only folder this node reads such files from")

    third = next_start(3)
    send(third.trial_id, incoming / "list.traj", forge([torch.zeros(2)], incoming / "list.traj"))
    expect_abort(third.trial_id, "holds trial 'list'")

    fourth = next_start(4)
    shapeless = {
        "trial_id": fourth.trial_id,
        "obs": {"observation.state": torch.zeros(2, 5)},
        "scored": torch.zeros(3, 4, 7),
        "log_probs": torch.zeros(2, 4),
        "mask": torch.ones(2, 4),
    }
    send(fourth.trial_id, incoming / "shape.traj", forge(shapeless, incoming / "shape.traj"))
    expect_abort(fourth.trial_id, "one row per query")

    # A policy node that refuses the trial because it could not load the announced weights: the
    # trainer re-announces them and waits before the next trial instead of looping start/abort.
    fifth = next_start(5)
    record_pub.publish(
        TrialRecord(
            trial_id=fifth.trial_id,
            weights_version=7,
            stochastic=True,
            message="refused: trial wants weights v0, this node has v7",
        )
    )
    expect_abort(fifth.trial_id, "re-announcing them, next trial in")
    refused_at = time.monotonic()
    next_start(6)  # still serving trials
    assert time.monotonic() - refused_at >= 0.5, "the next trial started straight into the same refusal"
    assert not marker.exists(), "a forged file ran code in the trainer"
