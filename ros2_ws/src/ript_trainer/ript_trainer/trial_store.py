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


def trajectory_from_dict(data: dict) -> Trajectory:
    return Trajectory(obs={k: torch.as_tensor(v) for k, v in data["obs"].items()},
                      scored=torch.as_tensor(data["scored"]), log_probs=torch.as_tensor(data["log_probs"]),
                      mask=torch.as_tensor(data["mask"]).bool(), num_steps=int(data.get("num_steps", 0)))


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
