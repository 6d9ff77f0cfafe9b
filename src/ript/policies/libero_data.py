"""LIBERO demonstrations on disk, and the one conversion from LIBERO observations to policy inputs.

HDF5 layout (the official LIBERO `*_demo.hdf5` layout, which this module reads and writes):

    data                      attrs: problem_info (JSON, has 'language_instruction'), env_args (JSON),
                                     bddl_file_name, total (number of samples), num_demos
    data/demo_<i>             attrs: num_samples, instruction, task_name  (the last two are ours)
        obs/agentview_rgb     uint8 [T, H, W, 3]  as rendered by robosuite (upside down; see below)
        obs/eye_in_hand_rgb   uint8 [T, H, W, 3]
        obs/joint_states      [T, 7]  arm joint positions
        obs/gripper_states    [T, 2]  finger joint positions
        obs/ee_pos            [T, 3]  end-effector position (world frame, m)
        obs/ee_ori            [T, 3]  end-effector orientation, axis-angle
        obs/ee_states         [T, 6]  ee_pos ++ ee_ori
        obs/object_state      [T, D]  privileged object poses (ours, optional; see ript.sim.env)
        actions               [T, 7]  delta pose + gripper (-1 open, +1 close)
        states                [T, S]  flattened MuJoCo states (time, qpos, qvel)
        rewards, dones        [T]

Images may be absent (state-only demos). Image orientation: robosuite returns OpenGL buffers whose
first row is the *bottom* of the picture, and LIBERO stores them that way. "Upright" here means
row 0 is the top of the camera view, i.e. a vertical flip `[::-1]` of the stored image (a pure
flip, not the 180° rotation some projects use, which also mirrors left/right). That flip happens in
exactly one place: `upright`, called by `policy_observation`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ript.core.constants import OBS_IMAGE_AGENTVIEW, OBS_IMAGE_WRIST, OBS_LANGUAGE, OBS_STATE

AGENTVIEW = "agentview_rgb"
WRIST = "eye_in_hand_rgb"
JOINT_STATES = "joint_states"
GRIPPER_STATES = "gripper_states"
EE_POS = "ee_pos"
EE_ORI = "ee_ori"
EE_STATES = "ee_states"
OBJECT_STATE = "object_state"
IMAGE_KEYS = (AGENTVIEW, WRIST)

PROPRIO_KEYS = (EE_POS, EE_ORI, GRIPPER_STATES)
"""OBS_STATE = ee_pos (3) ++ ee_ori axis-angle (3) ++ gripper_states (2) = PROPRIO_DIM features,
then, when the observation has object poses (state mode), object_state (D) and each object's
position relative to the end effector (3 per object). Joint angles are left out: the action space
is end-effector deltas, so the end-effector pose is the state that matters."""
PROPRIO_DIM = 8
OBJECT_POSE_DIM = 7
"""object_state holds one (position xyz, quaternion xyzw) per object, zero-padded."""


def state_dim(object_state_dim: int = 0) -> int:
    """Length of OBS_STATE for observations with `object_state_dim` object-pose features."""
    return PROPRIO_DIM + object_state_dim + 3 * (object_state_dim // OBJECT_POSE_DIM)


@dataclass
class Demo:
    """One demonstration (or any recorded episode) with LIBERO's keys."""

    obs: dict[str, np.ndarray]
    actions: np.ndarray
    states: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    instruction: str
    task_name: str = ""
    attrs: dict = field(default_factory=dict)
    """Extra per-demo attributes (e.g. init_state_index, seed); written as HDF5 attrs."""

    def __post_init__(self) -> None:
        length = len(self.actions)
        if self.actions.ndim != 2:
            raise ValueError(f"actions must be [T, A], got {self.actions.shape}")
        lengths = {"states": len(self.states), "rewards": len(self.rewards), "dones": len(self.dones)}
        lengths.update({f"obs/{k}": len(v) for k, v in self.obs.items()})
        bad = {k: n for k, n in lengths.items() if n != length}
        if bad:
            raise ValueError(f"every field needs T={length} rows, mismatched: {bad}")

    def __len__(self) -> int:
        return len(self.actions)


def _demo_sort_key(name: str) -> int:
    return int(name.split("_")[-1])


def write_demos(path: str | Path, demos: Sequence[Demo], env_args: dict | None = None) -> Path:
    """Writes demos to one HDF5 file in LIBERO's layout (overwrites the file)."""
    import h5py  # lazy: policy code that never touches demos should not need h5py

    if not demos:
        raise ValueError("no demos to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    first = demos[0]
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["problem_info"] = json.dumps(
            {"problem_name": "libero", "language_instruction": first.instruction, "task_name": first.task_name}
        )
        data.attrs["env_args"] = json.dumps(env_args or {})
        data.attrs["bddl_file_name"] = str((env_args or {}).get("bddl_file", ""))
        data.attrs["total"] = int(sum(len(d) for d in demos))
        data.attrs["num_demos"] = len(demos)
        for i, demo in enumerate(demos):
            group = data.create_group(f"demo_{i}")
            group.attrs["num_samples"] = len(demo)
            group.attrs["instruction"] = demo.instruction
            group.attrs["task_name"] = demo.task_name
            for key, value in demo.attrs.items():
                group.attrs[key] = value
            obs_group = group.create_group("obs")
            for key, value in demo.obs.items():
                # lzf: fast on 2 CPU cores and readable by any h5py; images shrink ~3x.
                compression = "lzf" if value.dtype == np.uint8 else None
                obs_group.create_dataset(key, data=value, compression=compression)
            group.create_dataset("actions", data=np.asarray(demo.actions, dtype=np.float64))
            group.create_dataset("states", data=np.asarray(demo.states, dtype=np.float64))
            group.create_dataset("rewards", data=np.asarray(demo.rewards, dtype=np.uint8))
            group.create_dataset("dones", data=np.asarray(demo.dones, dtype=np.uint8))
    return path


def _instruction_from_filename(path: Path) -> str:
    # Official files are named <task_name>_demo.hdf5; LIBERO-100 names start with a SCENE prefix.
    stem = re.sub(r"^.*SCENE\d+_", "", path.stem.removesuffix("_demo"))
    return stem.replace("_", " ")


def read_demos(path: str | Path, max_demos: int | None = None) -> list[Demo]:
    """Reads demos written by `write_demos` or an official LIBERO `*_demo.hdf5` file."""
    import h5py

    path = Path(path)
    demos: list[Demo] = []
    with h5py.File(path, "r") as f:
        data = f["data"]
        problem_info = json.loads(data.attrs.get("problem_info", "{}") or "{}")
        file_instruction = problem_info.get("language_instruction") or _instruction_from_filename(path)
        if isinstance(file_instruction, list):  # some LIBERO files store a list of strings
            file_instruction = " ".join(file_instruction)
        file_task_name = problem_info.get("task_name") or path.stem.removesuffix("_demo")
        names = sorted((k for k in data.keys() if k.startswith("demo_")), key=_demo_sort_key)
        for name in names[:max_demos]:
            group = data[name]
            obs = {key: group["obs"][key][()] for key in group["obs"].keys()} if "obs" in group else {}
            length = len(group["actions"])
            attrs = {k: v for k, v in group.attrs.items() if k not in ("num_samples", "instruction", "task_name")}
            demos.append(
                Demo(
                    obs=obs,
                    actions=group["actions"][()],
                    states=group["states"][()] if "states" in group else np.zeros((length, 0)),
                    rewards=group["rewards"][()] if "rewards" in group else np.zeros(length),
                    dones=group["dones"][()] if "dones" in group else np.zeros(length),
                    instruction=str(group.attrs.get("instruction", file_instruction)),
                    task_name=str(group.attrs.get("task_name", file_task_name)),
                    attrs=attrs,
                )
            )
    return demos


def upright(image: np.ndarray) -> np.ndarray:
    """Stored LIBERO image(s) [..., H, W, 3] -> upright (row 0 = top of the view). The only flip."""
    return np.ascontiguousarray(image[..., ::-1, :, :])


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 images [..., H, W, 3] -> [..., size, size, 3] (area interpolation; unchanged when already that size)."""
    import cv2

    if images.shape[-3] == size and images.shape[-2] == size:
        return images
    flat = images.reshape(-1, *images.shape[-3:])
    out = np.stack([cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA) for img in flat])
    return out.reshape(*images.shape[:-3], size, size, 3)


def state_features(obs: Mapping[str, np.ndarray]) -> np.ndarray:
    """OBS_STATE features float32 [..., state_dim(D)]: see PROPRIO_KEYS."""
    parts = [np.asarray(obs[key], dtype=np.float32) for key in PROPRIO_KEYS]
    if OBJECT_STATE in obs:
        objects = np.asarray(obs[OBJECT_STATE], dtype=np.float32)
        if objects.shape[-1] % OBJECT_POSE_DIM:
            raise ValueError(
                f"object_state must hold {OBJECT_POSE_DIM} numbers (pos + quat xyzw) per object, "
                f"got {objects.shape[-1]}"
            )
        parts.append(objects)
        # Where each object is *from the gripper*: the quantity a reaching action is proportional
        # to. A small policy that must subtract absolute positions itself drifts in closed loop.
        poses = objects.reshape(*objects.shape[:-1], -1, OBJECT_POSE_DIM)
        ee = np.asarray(obs[EE_POS], dtype=np.float32)[..., None, :]
        present = np.any(poses != 0, axis=-1, keepdims=True)  # padding slots stay zero
        parts.append(np.where(present, poses[..., :3] - ee, 0).reshape(*objects.shape[:-1], -1))
    return np.concatenate(parts, axis=-1)


def policy_observation(
    obs: Mapping[str, np.ndarray],
    instruction_embedding: np.ndarray | None = None,
    image_size: int | None = None,
) -> dict[str, np.ndarray]:
    """LIBERO-keyed observation (one step, or a [T, ...] stack) -> policy keys (ript.core.constants).

    OBS_STATE: float32 [(T,) 8 + D] (see PROPRIO_KEYS); OBS_IMAGE_*: uint8 [(T,) H, W, 3] upright,
    resized to image_size x image_size if given (only for keys present); OBS_LANGUAGE: float32
    [(T,) E] when an embedding [E] is given. Batch dims are not added: the caller stacks envs.
    """
    state = state_features(obs)
    out = {OBS_STATE: state}
    for key, policy_key in ((AGENTVIEW, OBS_IMAGE_AGENTVIEW), (WRIST, OBS_IMAGE_WRIST)):
        if key in obs:
            image = upright(np.asarray(obs[key], dtype=np.uint8))
            out[policy_key] = resize_images(image, image_size) if image_size else image
    if instruction_embedding is not None:
        embedding = np.asarray(instruction_embedding, dtype=np.float32)
        out[OBS_LANGUAGE] = np.broadcast_to(embedding, state.shape[:-1] + embedding.shape[-1:]).copy()
    return out
