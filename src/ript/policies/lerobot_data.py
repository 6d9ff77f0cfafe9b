"""Demos and trials as LeRobotDataset v3.0 folders, written and read with pyarrow and PyAV.

The `lerobot` package does not co-install with this stack, so this module writes and reads the
documented layout itself (huggingface/lerobot `src/lerobot/datasets/`, codebase_version "v3.0"):

    meta/info.json                       codebase_version, fps, features (dtype, shape, names), paths
    meta/stats.json                      per feature: min, max, mean, std, count, q01..q99
    meta/tasks.parquet                   task strings (the pandas index "task") -> task_index
    meta/episodes/chunk-000/file-000.parquet   one row per episode: where its frames and video are
    data/chunk-000/file-000.parquet      one row per frame: every non-video feature
    videos/<key>/chunk-000/file-000.mp4  the frames of consecutive episodes of one camera (AV1)

An episode lies whole in one data file and one mp4 per camera; a file is closed once it passes its
size limit. Video frame i of an episode has timestamp from_timestamp + i / fps, with from_timestamp
computed as frames_before / fps (never a sum of float durations, which drifts).

What ript puts in it (`demo_episode`, `trial_episode`):
- a demo: `observation.images.agentview` / `.wrist` (upright: row 0 = top of the view),
  `observation.state` (ee_pos ++ ee_ori axis-angle ++ gripper_states, the 8 features LeRobot's
  LIBERO datasets use), `observation.environment_state` (object poses, when recorded),
  `observation.joint_states`, `action` (7), `next.reward`, `next.done`;
- a stored trial: one frame per policy query: the policy's inputs (`observation.state`, cameras),
  what LOOP re-scores (`ript.scored`, flattened), its log-probs and executed-element mask, the
  number of actions sent, and per frame the trial's `ript.trial_id`, `ript.judge` (who gave the
  reward), `ript.weights_version`, with the reward as `next.reward` on the last frame.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ript.core.trial_store import StoredTrial
from ript.policies.libero_data import (
    AGENTVIEW,
    EE_ORI,
    EE_POS,
    GRIPPER_STATES,
    JOINT_STATES,
    OBJECT_STATE,
    WRIST,
    Demo,
    upright,
)

CODEBASE_VERSION = "v3.0"
LIBERO_FPS = 20
"""LIBERO's (and the Franka policy's) control rate: one frame per action."""
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_MB = 100
VIDEO_FILES_SIZE_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
VIDEO_CODEC, VIDEO_OPTIONS = "libsvtav1", {"g": "2", "crf": "30", "preset": "12"}  # LeRobot's defaults

CAMERAS = {AGENTVIEW: "observation.images.agentview", WRIST: "observation.images.wrist"}
CAMERA_ALIASES = {AGENTVIEW: ("observation.images.image",), WRIST: ("observation.images.wrist_image",)}
"""Camera names of other LIBERO datasets in this format, read as ours (images assumed upright)."""
STATE_NAMES = ["ee_x", "ee_y", "ee_z", "ee_ax", "ee_ay", "ee_az", "gripper_left", "gripper_right"]
ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]


class LeRobotFormatError(ValueError):
    """A folder that is not a readable LeRobotDataset v3.0 (says which part is wrong)."""


@dataclass
class Episode:
    """One episode's frames: feature name -> [T, ...] arrays (videos: uint8 [T, H, W, 3])."""

    frames: dict[str, np.ndarray]
    videos: dict[str, np.ndarray]
    task: str
    names: dict[str, list[str]] = field(default_factory=dict)
    """Optional names per element of a vector feature (info.json's `names`)."""

    def __len__(self) -> int:
        return len(next(iter(self.frames.values())))


# ---- what ript stores, as episodes -----------------------------------------------------------
def demo_episode(demo: Demo) -> Episode:
    obs, length = demo.obs, len(demo)
    frames = {
        "observation.state": np.concatenate([obs[EE_POS], obs[EE_ORI], obs[GRIPPER_STATES]], axis=-1),
        "action": np.asarray(demo.actions),
        "next.reward": np.asarray(demo.rewards, dtype=np.float32).reshape(length),
        "next.done": np.asarray(demo.dones, dtype=bool).reshape(length),
    }
    if OBJECT_STATE in obs:
        frames["observation.environment_state"] = obs[OBJECT_STATE]
    if JOINT_STATES in obs:
        frames["observation.joint_states"] = obs[JOINT_STATES]
    videos = {name: upright(obs[key]) for key, name in CAMERAS.items() if key in obs}
    names = {"observation.state": STATE_NAMES, "action": ACTION_NAMES}
    return Episode({k: _float32(v) for k, v in frames.items()}, videos, demo.instruction, names)


def trial_episode(trial: StoredTrial, instruction: str = "") -> Episode:
    """A stored trial, one frame per policy query (see the module docstring)."""
    from ript.core.constants import OBS_IMAGE_AGENTVIEW, OBS_IMAGE_WRIST

    trajectory = trial.trajectory
    queries = trajectory.log_probs.shape[0]
    cameras = {OBS_IMAGE_AGENTVIEW: CAMERAS[AGENTVIEW], OBS_IMAGE_WRIST: CAMERAS[WRIST]}
    frames: dict[str, np.ndarray] = {
        f"observation.{key.removeprefix('observation.')}": value.cpu().numpy().reshape(queries, -1)
        for key, value in trajectory.obs.items()
        if key not in cameras
    }
    reward = np.zeros(queries, dtype=np.float32)
    reward[-1] = trial.reward
    frames.update(
        {
            "ript.scored": trajectory.scored.cpu().numpy().reshape(queries, -1),
            "ript.log_prob": trajectory.log_probs.cpu().numpy(),
            "ript.mask": trajectory.mask.cpu().numpy(),
            "next.reward": reward,
            "next.done": np.arange(queries) == queries - 1,
            "ript.trial_id": np.array([trial.trial_id] * queries, dtype=object),
            "ript.judge": np.array([trial.reward_source or "unknown"] * queries, dtype=object),
            "ript.weights_version": np.full(queries, trial.weights_version, dtype=np.int64),
        }
    )
    videos = {cameras[key]: value.cpu().numpy() for key, value in trajectory.obs.items() if key in cameras}
    return Episode(frames, videos, instruction or trial.context_id)


def _float32(value: np.ndarray) -> np.ndarray:
    value = np.asarray(value)
    return value.astype(np.float32) if value.dtype.kind == "f" else value


# ---- writing ------------------------------------------------------------------------------------
def _feature(value: np.ndarray, names: list[str] | None) -> dict:
    if value.dtype == object:
        return {"dtype": "string", "shape": [1], "names": None}
    shape = list(value.shape[1:]) or [1]
    if len(shape) > 1:
        raise ValueError(f"frame features must be scalars or vectors, got shape {shape}: flatten it first")
    return {"dtype": str(value.dtype), "shape": shape, "names": names}


def _column(value: np.ndarray, feature: dict):
    import pyarrow as pa

    if feature["dtype"] == "string":
        return pa.array([str(v) for v in value], type=pa.string())
    if feature["shape"] == [1] and value.ndim == 1:
        return pa.array(value)
    flat = np.ascontiguousarray(value).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), feature["shape"][0])


def _stats(values: np.ndarray, video: bool = False) -> dict:
    """LeRobot's per-feature statistics; cameras per channel, scaled to [0, 1], shape [3, 1, 1]."""
    if video:
        sample = values[:: max(1, len(values) // 100)].astype(np.float64) / 255.0  # [N, H, W, 3]
        per_channel = sample.transpose(3, 0, 1, 2).reshape(3, -1)
        stat = {
            "min": per_channel.min(1),
            "max": per_channel.max(1),
            "mean": per_channel.mean(1),
            "std": per_channel.std(1),
            **{k: np.quantile(per_channel, q, axis=1) for k, q in QUANTILES.items()},
        }
        return {**{k: v.reshape(3, 1, 1).tolist() for k, v in stat.items()}, "count": [len(sample)]}
    data = values.astype(np.float64).reshape(len(values), -1)
    stat = {
        "min": data.min(0),
        "max": data.max(0),
        "mean": data.mean(0),
        "std": data.std(0),
        **{k: np.quantile(data, q, axis=0) for k, q in QUANTILES.items()},
    }
    return {**{k: v.tolist() for k, v in stat.items()}, "count": [len(values)]}


class VideoFile:
    """One mp4 of one camera: the frames of consecutive episodes in one AV1 stream, pts = frame count
    (also `ript eval --videos`)."""

    def __init__(self, path: Path, fps: int, height: int, width: int) -> None:
        import os

        import av

        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole config per file otherwise
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.frames, self.bytes = path, 0, 0
        self.container = av.open(str(path), mode="w")
        self.stream = self.container.add_stream(VIDEO_CODEC, rate=fps, options=dict(VIDEO_OPTIONS))
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        from fractions import Fraction

        self.stream.time_base = Fraction(1, fps)

    def add(self, images: np.ndarray) -> None:
        import av

        for image in images:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = self.frames
            self.frames += 1
            for packet in self.stream.encode(frame):
                self.bytes += packet.size
                self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def write_dataset(
    folder: str | Path, episodes: Iterable[Episode], fps: int = LIBERO_FPS, robot_type: str = "panda"
) -> Path:
    """Writes `episodes` (all with the same features) as a LeRobotDataset v3.0 folder; returns it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    if (folder / "meta" / "info.json").exists():
        raise FileExistsError(f"{folder} already holds a dataset; write a new folder")
    features: dict[str, dict] = {}
    tasks: dict[str, int] = {}
    episode_rows: list[dict] = []
    data_tables: list = []
    data_file = [0, 0]  # chunk, file
    data_bytes = 0
    videos: dict[str, VideoFile] = {}
    video_file: dict[str, list[int]] = {}
    collected: dict[str, list[np.ndarray]] = {}
    total = 0

    def flush_data() -> None:
        nonlocal data_tables, data_bytes
        if data_tables:
            path = folder / DATA_PATH.format(chunk_index=data_file[0], file_index=data_file[1])
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.concat_tables(data_tables), path)
            data_tables, data_bytes = [], 0
            _advance(data_file)

    for number, episode in enumerate(episodes):
        length = len(episode)
        if length < 1:
            raise ValueError(f"episode {number} has no frames")
        if not features:  # the first episode decides the features
            features = {name: _feature(v, episode.names.get(name)) for name, v in episode.frames.items()}
            for name, images in episode.videos.items():
                height, width = images.shape[1:3]
                features[name] = {
                    "dtype": "video",
                    "shape": [height, width, 3],
                    "names": ["height", "width", "channels"],
                    "info": {
                        "video.height": height,
                        "video.width": width,
                        "video.codec": "av1",
                        "video.pix_fmt": "yuv420p",
                        "video.is_depth_map": False,
                        "video.fps": fps,
                        "video.channels": 3,
                        "has_audio": False,
                    },
                }
                video_file[name] = [0, 0]
            features.update(DEFAULT_FEATURES)
        frame_keys = set(episode.frames) | set(episode.videos)
        expected = {k for k, f in features.items() if k not in DEFAULT_FEATURES}
        if frame_keys != expected:
            raise ValueError(f"episode {number} has features {sorted(frame_keys)}, the dataset {sorted(expected)}")
        task_index = tasks.setdefault(episode.task, len(tasks))
        frame_index = np.arange(length, dtype=np.int64)
        columns = {
            **{name: _column(np.asarray(value), features[name]) for name, value in episode.frames.items()},
            "timestamp": pa.array((frame_index / fps).astype(np.float32)),
            "frame_index": pa.array(frame_index),
            "episode_index": pa.array(np.full(length, number, dtype=np.int64)),
            "index": pa.array(total + frame_index),
            "task_index": pa.array(np.full(length, task_index, dtype=np.int64)),
        }
        table = pa.table(columns)
        if data_tables and data_bytes + table.nbytes > DATA_FILES_SIZE_MB * 2**20:
            flush_data()
        data_tables.append(table)
        data_bytes += table.nbytes
        row: dict[str, Any] = {
            "episode_index": number,
            "tasks": [episode.task],
            "length": length,
            "data/chunk_index": data_file[0],
            "data/file_index": data_file[1],
            "dataset_from_index": total,
            "dataset_to_index": total + length,
        }
        for name, images in episode.videos.items():
            current = videos.get(name)
            if current is not None and current.bytes > VIDEO_FILES_SIZE_MB * 2**20:
                current.close()
                _advance(video_file[name])
                current = None
            if current is None:
                chunk, file = video_file[name]
                path = folder / VIDEO_PATH.format(video_key=name, chunk_index=chunk, file_index=file)
                current = videos[name] = VideoFile(path, fps, *images.shape[1:3])
            row[f"videos/{name}/chunk_index"], row[f"videos/{name}/file_index"] = video_file[name]
            row[f"videos/{name}/from_timestamp"] = current.frames / fps
            row[f"videos/{name}/to_timestamp"] = (current.frames + length) / fps
            current.add(images)
            collected.setdefault(name, []).append(images[:: max(1, length // 10)])
        for name, value in episode.frames.items():
            if features[name]["dtype"] != "string":
                collected.setdefault(name, []).append(np.asarray(value))
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = 0, 0
        episode_rows.append(row)
        total += length
    if not episode_rows:
        raise ValueError("no episodes to write")
    flush_data()
    for video in videos.values():
        video.close()

    meta = folder / "meta"
    episodes_path = folder / EPISODES_PATH.format(chunk_index=0, file_index=0)
    episodes_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(episode_rows), episodes_path)
    _write_tasks(meta / "tasks.parquet", tasks)
    stats = {
        name: _stats(np.concatenate(parts), video=features[name]["dtype"] == "video")
        for name, parts in collected.items()
    }
    default_columns = pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("data/*/*.parquet"))])
    for name in DEFAULT_FEATURES:
        stats[name] = _stats(default_columns.column(name).to_numpy())
    (meta / "stats.json").write_text(json.dumps(stats))
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": len(episode_rows),
        "total_frames": total,
        "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILES_SIZE_MB,
        "video_files_size_in_mb": VIDEO_FILES_SIZE_MB,
        "fps": fps,
        "splits": {"train": f"0:{len(episode_rows)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if videos else None,
        "features": features,
    }
    (meta / "info.json").write_text(json.dumps(info, indent=2))  # last: its presence marks a complete folder
    return folder


def _advance(position: list[int]) -> None:
    """The next (chunk, file) position: files 0..CHUNKS_SIZE-1 per chunk."""
    position[1] += 1
    if position[1] == CHUNKS_SIZE:
        position[0], position[1] = position[0] + 1, 0


def _write_tasks(path: Path, tasks: dict[str, int]) -> None:
    """tasks.parquet as pandas writes it: the task string is the index ("task"), task_index a column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ordered = sorted(tasks, key=tasks.__getitem__)
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    table = pa.table({"task_index": pa.array([tasks[t] for t in ordered], pa.int64()), "task": pa.array(ordered)})
    pq.write_table(table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()}), path)


# ---- reading ------------------------------------------------------------------------------------
def is_dataset(path: str | Path) -> bool:
    return (Path(path) / "meta" / "info.json").is_file()


def read_info(folder: str | Path) -> dict:
    path = Path(folder) / "meta" / "info.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LeRobotFormatError(f"{path}: not a readable info.json ({exc})") from exc
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3."):
        raise LeRobotFormatError(f"{folder}: codebase_version {version!r}; this reader reads v3.x (LeRobot >= 0.4)")
    for key in ("fps", "features", "total_episodes", "total_frames", "data_path"):
        if key not in info:
            raise LeRobotFormatError(f"{path}: no {key!r}")
    return info


def read_dataset(folder: str | Path) -> tuple[dict, list[Episode]]:
    """(info, episodes) of a LeRobotDataset v3.0 folder (ours or any other writer's)."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    info = read_info(folder)
    fps, features = info["fps"], info["features"]
    tasks_table = pq.read_table(folder / "meta" / "tasks.parquet")
    task_column = "task" if "task" in tasks_table.column_names else "__index_level_0__"
    tasks = dict(zip(tasks_table.column("task_index").to_pylist(), tasks_table.column(task_column).to_pylist()))
    episode_files = sorted(folder.glob("meta/episodes/*/*.parquet"))
    rows = sorted(
        (row for path in episode_files for row in pq.read_table(path).to_pylist()), key=lambda r: r["episode_index"]
    )
    if [r["episode_index"] for r in rows] != list(range(info["total_episodes"])):
        raise LeRobotFormatError(f"{folder}: episodes are not 0..{info['total_episodes'] - 1}")
    data_files = sorted(folder.glob("data/*/*.parquet"))
    if not data_files:
        raise LeRobotFormatError(f"{folder}: no data/*/*.parquet")
    import pyarrow as pa

    data = pa.concat_tables([pq.read_table(p) for p in data_files])
    if data.num_rows != info["total_frames"] or data.column("index").to_pylist() != list(range(data.num_rows)):
        raise LeRobotFormatError(f"{folder}: the data files hold {data.num_rows} frames whose index is not 0..n-1")
    video_keys = [k for k, f in features.items() if f["dtype"] == "video"]
    frame_keys = [k for k, f in features.items() if f["dtype"] != "video" and k not in DEFAULT_FEATURES]
    columns = {key: _numpy(data.column(key), features[key]) for key in frame_keys}
    task_index = data.column("task_index").to_numpy()
    episodes = []
    decoded: dict[Path, np.ndarray] = {}
    for row in rows:
        start, stop = row["dataset_from_index"], row["dataset_to_index"]
        frames = {key: values[start:stop] for key, values in columns.items()}
        videos = {}
        for key in video_keys:
            path = folder / info["video_path"].format(
                video_key=key, chunk_index=row[f"videos/{key}/chunk_index"], file_index=row[f"videos/{key}/file_index"]
            )
            if path not in decoded:
                decoded[path] = decode_video(path)
            first = round(row[f"videos/{key}/from_timestamp"] * fps)
            videos[key] = decoded[path][first : first + stop - start]
            if len(videos[key]) != stop - start:
                raise LeRobotFormatError(
                    f"{path}: episode {row['episode_index']} needs {stop - start} frames from {first}"
                )
        names = {k: f["names"] for k, f in features.items() if isinstance(f.get("names"), list) and k in frames}
        episodes.append(Episode(frames, videos, tasks[int(task_index[start])], names))
    return info, episodes


def _numpy(column, feature: dict) -> np.ndarray:
    import pyarrow as pa

    if feature["dtype"] == "string":
        return np.array(column.to_pylist(), dtype=object)
    array = column.combine_chunks()
    if pa.types.is_fixed_size_list(array.type) or pa.types.is_list(array.type):
        width = math.prod(feature["shape"])
        return array.flatten().to_numpy(zero_copy_only=False).reshape(len(array), width).astype(feature["dtype"])
    return array.to_numpy(zero_copy_only=False).astype(feature["dtype"])


def decode_video(path: Path) -> np.ndarray:
    """Every frame of an mp4, uint8 [N, H, W, 3], in presentation order."""
    import av

    if not path.is_file():
        raise LeRobotFormatError(f"missing video {path}")
    with av.open(str(path)) as container:
        frames = [(frame.pts, frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)]
    return np.stack([image for _, image in sorted(frames, key=lambda f: f[0])])


def read_demos(folder: str | Path, max_demos: int | None = None) -> list[Demo]:
    """A LeRobot dataset's episodes as ript demos (for `ript sft`): observation.state -> ee pose and
    gripper, cameras -> LIBERO's image keys (stored upright here, so flipped back to LIBERO's
    orientation), action, next.reward / next.done."""
    info, episodes = read_dataset(folder)
    features = info["features"]
    if "action" not in features or "observation.state" not in features:
        raise LeRobotFormatError(f"{folder}: a demo needs `action` and `observation.state` features")
    if features["observation.state"]["shape"] != [len(STATE_NAMES)]:
        raise LeRobotFormatError(
            f"{folder}: observation.state has shape {features['observation.state']['shape']}; ript reads "
            f"{len(STATE_NAMES)} features ({', '.join(STATE_NAMES)})"
        )
    demos = []
    for episode in episodes[:max_demos]:
        frames, length = episode.frames, len(episode)
        state = frames["observation.state"]
        obs = {EE_POS: state[:, :3], EE_ORI: state[:, 3:6], GRIPPER_STATES: state[:, 6:8]}
        if "observation.environment_state" in frames:
            obs[OBJECT_STATE] = frames["observation.environment_state"]
        if "observation.joint_states" in frames:
            obs[JOINT_STATES] = frames["observation.joint_states"]
        for key, name in CAMERAS.items():
            for candidate in (name, *CAMERA_ALIASES[key]):
                if candidate in episode.videos:
                    obs[key] = upright(episode.videos[candidate])  # the flip is its own inverse
                    break
        demos.append(
            Demo(
                obs=obs,
                actions=frames["action"].astype(np.float64),
                states=np.zeros((length, 0)),
                rewards=frames.get("next.reward", np.zeros(length)).reshape(length),
                dones=frames.get("next.done", np.zeros(length)).reshape(length),
                instruction=episode.task,
                task_name=episode.task.replace(" ", "_"),
            )
        )
    return demos


def export_demos(folder: str | Path, demos: Sequence[Demo], fps: int = LIBERO_FPS) -> Path:
    return write_dataset(folder, (demo_episode(d) for d in demos), fps)
