"""Every finished trial on disk before anyone is told it was counted.

A trial arrives over ROS in two halves (the reward from an operator or the simulator, the
trajectory from the policy node). Once both are there the trainer writes one verified file per
trial (`safe_io`: atomic rename + SHA-256) and only then acknowledges it and feeds it to the
sampler. After a crash the trainer replays the stored trials of its open iteration, in the order
they were stored, so no rewarded trial is ever lost or counted twice.

    <run>/trials/iter_000003/000007-<trial_id>.trial     one StoredTrial per file

No rclpy here: unit-tested without ROS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ript_policy.safe_io import load_or_set_aside, save_verified
from ript_trainer.trials import Trajectory


TRIAL_SUFFIX = ".trial"


@dataclass
class StoredTrial:
    """One rewarded trial: who it was (ids), what happened (reward, trajectory)."""

    trial_id: str
    iteration: int
    group_id: int
    context_index: int
    context_id: str
    reward: float
    reward_source: str
    weights_version: int
    trajectory: Trajectory
    sequence: int = 0
    """Order of storage within its iteration (0, 1, ...): the replay order after a restart."""


def trajectory_to_dict(trajectory: Trajectory) -> dict:
    """Plain tensors only (no pickled classes), so stored files outlive refactors of Trajectory."""
    return {"obs": {k: v.cpu() for k, v in trajectory.obs.items()}, "scored": trajectory.scored.cpu(),
            "log_probs": trajectory.log_probs.cpu(), "mask": trajectory.mask.cpu(),
            "num_steps": int(trajectory.num_steps)}


class TrajectorySchemaError(ValueError):
    """A trajectory payload of the wrong shape (a forged or foreign file): refused, never trained on."""


def trajectory_from_dict(data) -> Trajectory:
    """The Trajectory in a payload, after checking its schema: tensors where tensors belong, one
    row per policy query in every field, finite log-probs, a mask of the log-probs' shape."""
    if not isinstance(data, dict):
        raise TrajectorySchemaError(f"a trajectory is a dict, got {type(data).__name__}")
    missing = [key for key in ("obs", "scored", "log_probs", "mask") if key not in data]
    if missing:
        raise TrajectorySchemaError(f"trajectory lacks {missing}")
    obs = data["obs"]
    if not isinstance(obs, dict) or not obs or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                      for k, v in obs.items()):
        raise TrajectorySchemaError("trajectory obs must be a non-empty dict of name -> tensor")
    fields = {"scored": data["scored"], "log_probs": data["log_probs"], "mask": data["mask"]}
    for name, value in fields.items():
        if not isinstance(value, torch.Tensor):
            raise TrajectorySchemaError(f"trajectory {name} must be a tensor, got {type(value).__name__}")
    log_probs, mask = fields["log_probs"], fields["mask"]
    queries = log_probs.shape[0] if log_probs.dim() == 2 else -1
    if queries < 1 or mask.shape != log_probs.shape:
        raise TrajectorySchemaError(f"log_probs must be [queries >= 1, elements] with a mask alike; got "
                                    f"{tuple(log_probs.shape)} and {tuple(mask.shape)}")
    rows = {name: tensor.shape[0] if tensor.dim() else 0 for name, tensor in [*obs.items(), ("scored", fields["scored"])]}
    if any(n != queries for n in rows.values()):
        raise TrajectorySchemaError(f"every field needs one row per query ({queries}); got {rows}")
    if not log_probs.is_floating_point() or not bool(torch.isfinite(log_probs).all()):
        raise TrajectorySchemaError("log_probs must be finite floats")
    num_steps = data.get("num_steps", 0)
    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 0:
        raise TrajectorySchemaError(f"num_steps must be an int >= 0, got {num_steps!r}")
    return Trajectory(obs=dict(obs), scored=fields["scored"], log_probs=log_probs, mask=mask.bool(),
                      num_steps=num_steps)


class TrialStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def iteration_dir(self, iteration: int) -> Path:
        return self.root / f"iter_{iteration:06d}"

    def save(self, trial: StoredTrial) -> Path:
        """Persist one trial (durable when this returns). Its sequence number is assigned here."""
        folder = self.iteration_dir(trial.iteration)
        trial.sequence = len(self._files(trial.iteration))
        payload = {**asdict(trial), "trajectory": trajectory_to_dict(trial.trajectory)}
        path = folder / f"{trial.sequence:06d}-{trial.trial_id}{TRIAL_SUFFIX}"
        save_verified(payload, path)
        return path

    def load(self, iteration: int) -> list[StoredTrial]:
        """The trials stored for `iteration`, in storage order. A corrupt file cannot come from a
        completed save (writes are atomic), so it is reported and set aside, never replayed."""
        trials = []
        for path in self._files(iteration):
            payload = load_or_set_aside(path, "trial file")
            if payload is None:
                continue
            payload["trajectory"] = trajectory_from_dict(payload["trajectory"])
            trials.append(StoredTrial(**payload))
        return trials

    def trial_ids(self) -> dict[str, int]:
        """trial_id -> iteration for every stored trial (from file names: no payload is read)."""
        ids = {}
        for folder in sorted(self.root.glob("iter_*")):
            iteration = int(folder.name.split("_")[1])
            for path in folder.glob(f"*{TRIAL_SUFFIX}"):
                ids[path.stem.split("-", 1)[1]] = iteration
        return ids

    def _files(self, iteration: int) -> list[Path]:
        return sorted(self.iteration_dir(iteration).glob(f"*{TRIAL_SUFFIX}"))
