"""Files named by messages are untrusted: reading one never runs code, a name outside its folder is
refused unread, and a trajectory of the wrong shape is refused with a reason instead of reaching
(and crashing) the LOOP update."""

import hashlib
import io
import os

import pytest
import torch
from test_interactive import STATE_DIM, make_trainer, trajectory

from ript.core.constants import OBS_STATE
from ript.core.safe_io import MAGIC, CorruptFileError, RefusedFileError, confined_file, load_verified, save_verified
from ript.core.trial_store import TrajectorySchemaError, trajectory_from_dict
from ript.core.trials import Trajectory


class WritesMarker:
    """A pickle payload that runs code when loaded the unsafe way: it creates a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def write_with_valid_digest(obj, path):
    """A file in safe_io's format whose digest matches: what a forger on the DDS domain can write."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    path.write_bytes(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


def test_a_verified_file_with_a_pickled_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "forged.traj"
    write_with_valid_digest({"trial_id": "x", "obs": WritesMarker(marker)}, path)
    with pytest.raises(CorruptFileError, match="payload refused, not plain tensors"):
        load_verified(path)
    assert not marker.exists(), "loading a file ran code from it"
    # What ript itself writes still loads.
    save_verified({"state_dict": {"w": torch.ones(2)}, "config": {"a": [1, 2.0, "x", None]}}, tmp_path / "ok.ckpt")
    assert torch.equal(load_verified(tmp_path / "ok.ckpt")["state_dict"]["w"], torch.ones(2))


def test_confined_file_refuses_names_outside_their_folder(tmp_path):
    inside = tmp_path / "incoming"
    inside.mkdir()
    (inside / "a.traj").write_bytes(b"x" * 100)
    outside = tmp_path / "secret.traj"
    outside.write_bytes(b"x")
    (inside / "link.traj").symlink_to(outside)
    assert confined_file(inside / "a.traj", inside) == (inside / "a.traj").resolve()
    for name, why in [
        (outside, "outside"),
        (inside / ".." / "secret.traj", "outside"),
        (inside / "link.traj", "outside"),
        (inside, "outside"),
        (inside / "missing", "cannot be resolved"),
    ]:
        with pytest.raises(RefusedFileError, match=why):
            confined_file(name, inside)
    (inside / "sub").mkdir()
    with pytest.raises(RefusedFileError, match="not a regular file"):
        confined_file(inside / "sub", inside)
    with pytest.raises(RefusedFileError, match="over the limit"):
        confined_file(inside / "a.traj", inside, max_bytes=99)


def test_trajectory_schema_is_checked(tmp_path):
    trainer = make_trainer(tmp_path)
    good = trajectory(trainer.policy, 0)
    data = {"obs": good.obs, "scored": good.scored, "log_probs": good.log_probs, "mask": good.mask, "num_steps": 12}
    assert torch.equal(trajectory_from_dict(data).log_probs, good.log_probs)
    bad = [
        ([1, 2], "is a dict"),
        ({k: v for k, v in data.items() if k != "mask"}, "lacks"),
        ({**data, "obs": {OBS_STATE: [1.0]}}, "dict of name -> tensor"),
        ({**data, "scored": "x"}, "scored must be a tensor"),
        ({**data, "mask": good.mask[:, :1]}, "mask alike"),
        ({**data, "obs": {OBS_STATE: good.obs[OBS_STATE][:1]}}, "one row per query"),
        ({**data, "log_probs": good.log_probs.clone().fill_(float("nan"))}, "finite"),
        ({**data, "num_steps": -3}, "num_steps"),
    ]
    for payload, why in bad:
        with pytest.raises(TrajectorySchemaError, match=why):
            trajectory_from_dict(payload)


def test_a_trajectory_the_policy_cannot_score_is_refused_and_the_trial_stays_open(tmp_path):
    trainer = make_trainer(tmp_path)
    ticket = trainer.next_trial()
    good = trajectory(trainer.policy, 0)
    wrong_width = Trajectory(
        obs={OBS_STATE: torch.randn(3, STATE_DIM + 4)},
        scored=good.scored,
        log_probs=good.log_probs,
        mask=good.mask,
        num_steps=12,
    )
    verdict = trainer.on_trajectory(ticket.trial_id, wrong_width)
    assert not verdict.accepted and "cannot score it" in verdict.reason
    wrong_elements = Trajectory(
        obs=good.obs, scored=good.scored, log_probs=good.log_probs[:, :2], mask=good.mask[:, :2], num_steps=12
    )
    verdict = trainer.on_trajectory(ticket.trial_id, wrong_elements)
    assert not verdict.accepted and "the file says" in verdict.reason
    # The real trajectory still completes the trial.
    assert trainer.on_reward(ticket.trial_id, 1.0, "simulator").accepted
    assert trainer.on_trajectory(ticket.trial_id, good).trial_stored


def test_stray_records_are_judged_before_any_file_is_read(tmp_path):
    trainer = make_trainer(tmp_path)
    assert "unknown trial" in trainer.trajectory_wanted("forged-id").reason
    ticket = trainer.next_trial()
    assert trainer.trajectory_wanted(ticket.trial_id) is None
