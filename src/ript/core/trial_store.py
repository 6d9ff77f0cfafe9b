"""Every finished trial on disk before anyone is told it was counted.

A trial arrives over ROS in two halves (the reward from an operator or the simulator, the
trajectory from the policy node). Once both are there the trainer writes one verified file per
trial (`safe_io`: atomic rename + SHA-256) and only then acknowledges it and feeds it to the
sampler. After a crash the trainer replays the stored trials of its open iteration, in the order
they were stored, so no rewarded trial is ever lost or counted twice.

    <run>/trials/iter_000003/000007-<trial_id>.trial             one StoredTrial per file
    <run>/trials/.replica/iter_000003/000007-<trial_id>.trial    its replica (rebuilds a damaged file)

No rclpy here: unit-tested without ROS.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ript.core.safe_io import (
    CorruptFileError,
    atomic_write,
    confined_file,
    file_digest,
    load_verified,
    save_verified,
)
from ript.core.trials import Trajectory

TRIAL_SUFFIX = ".trial"
REPLICA_DIR = ".replica"
UNREPLAYED_DIR = "unreplayed"
TRIAL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
"""What a trial id may look like where one arrives from outside (the trainer's: it0003-g001-c012-k2-5f3a):
no dots, slashes or glob characters, so an id can never name a path of its own."""
log = logging.getLogger("ript.trial_store")


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
    robot: str = ""
    """The robot that ran the trial (its namespace, e.g. "robot2"; "" in a one-robot graph, and in
    files written before robots were recorded, which load with this default)."""


def trajectory_to_dict(trajectory: Trajectory) -> dict:
    """Plain tensors only (no pickled classes), so stored files outlive refactors of Trajectory."""
    return {
        "obs": {k: v.cpu() for k, v in trajectory.obs.items()},
        "scored": trajectory.scored.cpu(),
        "log_probs": trajectory.log_probs.cpu(),
        "mask": trajectory.mask.cpu(),
        "num_steps": int(trajectory.num_steps),
    }


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
    if (
        not isinstance(obs, dict)
        or not obs
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obs.items())
    ):
        raise TrajectorySchemaError("trajectory obs must be a non-empty dict of name -> tensor")
    fields = {"scored": data["scored"], "log_probs": data["log_probs"], "mask": data["mask"]}
    for name, value in fields.items():
        if not isinstance(value, torch.Tensor):
            raise TrajectorySchemaError(f"trajectory {name} must be a tensor, got {type(value).__name__}")
    log_probs, mask = fields["log_probs"], fields["mask"]
    queries = log_probs.shape[0] if log_probs.dim() == 2 else -1
    if queries < 1 or mask.shape != log_probs.shape:
        raise TrajectorySchemaError(
            f"log_probs must be [queries >= 1, elements] with a mask alike; got "
            f"{tuple(log_probs.shape)} and {tuple(mask.shape)}"
        )
    rows = {
        name: tensor.shape[0] if tensor.dim() else 0 for name, tensor in [*obs.items(), ("scored", fields["scored"])]
    }
    if any(n != queries for n in rows.values()):
        raise TrajectorySchemaError(f"every field needs one row per query ({queries}); got {rows}")
    if not log_probs.is_floating_point() or not bool(torch.isfinite(log_probs).all()):
        raise TrajectorySchemaError("log_probs must be finite floats")
    num_steps = data.get("num_steps", 0)
    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 0:
        raise TrajectorySchemaError(f"num_steps must be an int >= 0, got {num_steps!r}")
    return Trajectory(
        obs=dict(obs), scored=fields["scored"], log_probs=log_probs, mask=mask.bool(), num_steps=num_steps
    )


def load_announced_trajectory(
    path: str | Path, sha256: str, trial_id: str, folder: str | Path, max_bytes: int
) -> tuple[Path, Trajectory]:
    """The trajectory a message (TrialRecord) says is at `path`, for trial `trial_id`: the path must
    be a regular file inside `folder` of at most `max_bytes`, its digest the announced one, its
    payload plain tensors and containers (no code runs) holding that trial, in the trajectory schema.
    Raises OSError, CorruptFileError or ValueError with the reason; returns the checked path too."""
    checked = confined_file(path, folder, max_bytes)
    if file_digest(checked) != sha256:
        raise CorruptFileError(f"{checked}: digest differs from the announced one")
    payload = load_verified(checked)
    if not isinstance(payload, dict) or payload.get("trial_id") != trial_id:
        held = payload.get("trial_id") if isinstance(payload, dict) else type(payload).__name__
        raise CorruptFileError(f"{checked} holds trial {held!r}")
    return checked, trajectory_from_dict(payload)


def _check_scalars(trial: StoredTrial) -> None:
    """The fields a viewer shows have the types the trainer writes (a forged file may hold anything)."""
    for name, kinds in (
        ("iteration", int),
        ("context_id", str),
        ("reward", (int, float)),
        ("reward_source", str),
        ("weights_version", int),
        ("sequence", int),
        ("robot", str),
    ):
        value = getattr(trial, name)
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise TrajectorySchemaError(f"trial {trial.trial_id}: {name} is a {type(value).__name__}")
    if not math.isfinite(trial.reward):
        raise TrajectorySchemaError(f"trial {trial.trial_id}: reward {trial.reward}")


class TrialStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def iteration_dir(self, iteration: int) -> Path:
        return self.root / f"iter_{iteration:06d}"

    def save(self, trial: StoredTrial) -> Path:
        """Persist one trial (durable when this returns), and a replica of it under .replica/ (a
        second file, so one damaged or lost file loses no trial). Its sequence number is assigned here."""
        folder = self.iteration_dir(trial.iteration)
        trial.sequence = len(self._files(trial.iteration))
        payload = {**asdict(trial), "trajectory": trajectory_to_dict(trial.trajectory)}
        path = folder / f"{trial.sequence:06d}-{trial.trial_id}{TRIAL_SUFFIX}"
        save_verified(payload, self.replica(path))
        save_verified(payload, path)
        return path

    def replica(self, path: Path) -> Path:
        return self.root / REPLICA_DIR / path.parent.name / path.name

    def load(self, iteration: int) -> list[StoredTrial]:
        """The trials stored for `iteration`, in storage order.

        A file that does not verify (a bad disk, a crash of the storage below us, a hand edit) is set
        aside as *.corrupt and rebuilt from its replica. Only when both copies are gone does a trial
        go missing; the replay then ends before it (a LOOP group must be replayed in order), the later
        trials are moved to iter_<N>/unreplayed/ for inspection, and the trainer collects from there."""
        trials = []
        folder = self.iteration_dir(iteration)
        names = sorted(
            {p.name for p in self._files(iteration)}
            | {p.name for p in (self.root / REPLICA_DIR / folder.name).glob(f"*{TRIAL_SUFFIX}")}
        )
        for n, name in enumerate(names):
            # a sequence number skipped: both copies of trial n were deleted, not merely damaged
            present = name.split("-", 1)[0] == f"{n:06d}"
            trial = self._load_one(folder / name) if present else None
            if trial is None:
                later = names[n + 1 :] if present else names[n:]
                log.error(
                    "trial %s of iteration %d is lost (file and replica %s); replaying the %d "
                    "before it, setting aside the %d after it in %s",
                    name if present else f"number {n}",
                    iteration,
                    "unreadable" if present else "gone",
                    n,
                    len(later),
                    folder / UNREPLAYED_DIR,
                )
                for other in later:
                    for path in (folder / other, self.replica(folder / other)):
                        if path.exists():
                            target = path.parent / UNREPLAYED_DIR / path.name
                            target.parent.mkdir(exist_ok=True)
                            path.rename(target)
                break
            trials.append(trial)
        return trials

    def _load_one(self, path: Path) -> StoredTrial | None:
        """The trial in `path` or, failing that, in its replica (which then rebuilds `path`)."""
        replica = self.replica(path)
        for source in (path, replica):
            if not source.exists():
                continue
            try:
                payload = load_verified(source)
                if not isinstance(payload, dict):
                    raise CorruptFileError(f"{source}: holds a {type(payload).__name__}, not a trial")
                payload["trajectory"] = trajectory_from_dict(payload.get("trajectory"))
                trial = StoredTrial(**payload)
            except (CorruptFileError, TypeError, ValueError) as exc:
                log.error("setting aside unreadable trial file: %s", exc)
                source.rename(source.with_suffix(".corrupt"))
                continue
            if source == replica:
                atomic_write(path, lambda f: f.write(replica.read_bytes()))
                log.warning("rebuilt trial file %s from its replica", path)
            return trial
        return None

    def read(self, trial_id: str) -> StoredTrial | None:
        """The stored trial `trial_id` (None when there is none), for a viewer: read-only, it never
        sets a damaged file aside or rebuilds it (the trainer's `load` does that), but shows the
        replica when the file does not verify. Raises ValueError for an id outside TRIAL_ID_PATTERN
        and CorruptFileError, naming the reason, when no copy is readable or one lies outside the store."""
        if not re.fullmatch(TRIAL_ID_PATTERN, trial_id):
            raise ValueError(f"not a trial id: {trial_id[:60]!r}")
        path = next(
            (p for p in self.root.glob(f"iter_*/*-{trial_id}{TRIAL_SUFFIX}") if p.stem.split("-", 1)[1] == trial_id),
            None,
        )
        if path is None:
            return None
        reasons = []
        for source in (path, self.replica(path)):
            try:
                # a symlink planted in the store must not make the viewer read files elsewhere
                payload = load_verified(confined_file(source, self.root))
                if not isinstance(payload, dict) or payload.get("trial_id") != trial_id:
                    held = payload.get("trial_id") if isinstance(payload, dict) else type(payload).__name__
                    raise CorruptFileError(f"{source}: holds {held!r}, not trial {trial_id}")
                payload["trajectory"] = trajectory_from_dict(payload.get("trajectory"))
                trial = StoredTrial(**payload)
                _check_scalars(trial)
                return trial
            except (CorruptFileError, TypeError, ValueError) as exc:
                reasons.append(self._relative(str(exc)))
        raise CorruptFileError("; ".join(reasons))

    def _relative(self, message: str) -> str:
        """A message with the store's own location left out (the reader knows where the store is)."""
        resolved = str(self.root.resolve())
        return message.replace(f"{resolved}/", "").replace(f"{self.root}/", "").replace(resolved, "the trial store")

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
