"""LeRobotDataset v3.0 folders written and read by ript.policies.lerobot_data: the round trip of
demos and trials, and the layout checked against the format's schema (meta/info.json, the data
and episode parquet files, tasks, AV1 videos with their timestamps, stats)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from vla_helpers import make_demo

from ript.cli.main import main
from ript.core.constants import OBS_IMAGE_AGENTVIEW, OBS_STATE
from ript.core.trial_store import StoredTrial, TrialStore
from ript.core.trials import Trajectory
from ript.policies import lerobot_data
from ript.policies.libero_data import AGENTVIEW, WRIST, write_demos

FPS = 20


def smooth_demo(length: int, seed: int, instruction: str) -> object:
    """A demo whose camera frames are smooth gradients (a lossy video codec keeps them close)."""
    demo = make_demo(length=length, image_size=32, seed=seed, instruction=instruction)
    y, x = np.mgrid[0:32, 0:32]
    for key, phase in ((AGENTVIEW, 0), (WRIST, 40)):
        frames = [np.stack([x * 6 + t, y * 6 + phase, (x + y) * 3 + 2 * t], -1) % 256 for t in range(length)]
        demo.obs[key] = np.asarray(frames, dtype=np.uint8)
    return demo


@pytest.fixture(scope="module")
def demos():
    return [
        smooth_demo(12, 0, "put the bowl on the plate"),
        smooth_demo(9, 1, "put the bowl on the plate"),
        smooth_demo(15, 2, "open the drawer"),
    ]


@pytest.fixture(scope="module")
def folder(demos, tmp_path_factory):
    return lerobot_data.export_demos(tmp_path_factory.mktemp("lerobot") / "demos", demos, fps=FPS)


def test_demos_round_trip(demos, folder):
    back = lerobot_data.read_demos(folder)
    assert [len(d) for d in back] == [len(d) for d in demos]
    assert [d.instruction for d in back] == [d.instruction for d in demos]
    for original, read in zip(demos, back):
        for key in ("ee_pos", "ee_ori", "gripper_states", "object_state", "joint_states"):
            np.testing.assert_allclose(read.obs[key], original.obs[key].astype(np.float32), err_msg=key)
        np.testing.assert_allclose(read.actions, original.actions.astype(np.float32))
        np.testing.assert_array_equal(read.rewards, original.rewards)
        for key in (AGENTVIEW, WRIST):  # AV1 is lossy: close, and in LIBERO's orientation again
            error = np.abs(read.obs[key].astype(int) - original.obs[key].astype(int)).mean()
            assert error < 6.0, (key, error)
            flipped = np.abs(read.obs[key][:, ::-1].astype(int) - original.obs[key].astype(int)).mean()
            assert flipped > 3 * error


def test_layout_matches_the_v3_schema(demos, folder):
    info = json.loads((folder / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == FPS
    assert info["total_episodes"] == 3 and info["total_frames"] == 36 and info["total_tasks"] == 2
    assert info["splits"] == {"train": "0:3"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    features = info["features"]
    for name, dtype in (
        ("timestamp", "float32"),
        ("frame_index", "int64"),
        ("episode_index", "int64"),
        ("index", "int64"),
        ("task_index", "int64"),
    ):
        assert features[name] == {"dtype": dtype, "shape": [1], "names": None}
    assert features["observation.state"]["shape"] == [8] and len(features["observation.state"]["names"]) == 8
    camera = features["observation.images.agentview"]
    assert camera["dtype"] == "video" and camera["shape"] == [32, 32, 3]
    assert camera["info"]["video.codec"] == "av1" and camera["info"]["video.fps"] == FPS

    data = pq.read_table(folder / "data" / "chunk-000" / "file-000.parquet")
    video_keys = {k for k, f in features.items() if f["dtype"] == "video"}
    assert set(data.column_names) == set(features) - video_keys  # every column declared, no video in it
    assert data.schema.field("observation.state").type == pa.list_(pa.float32(), 8)
    assert data.schema.field("action").type == pa.list_(pa.float32(), 7)
    assert data.schema.field("timestamp").type == pa.float32()
    assert data.column("index").to_pylist() == list(range(36))
    lengths = [len(d) for d in demos]
    expected_times = np.concatenate([np.arange(n) / FPS for n in lengths]).astype(np.float32)
    np.testing.assert_array_equal(data.column("timestamp").to_numpy(), expected_times)

    tasks = pq.read_table(folder / "meta" / "tasks.parquet")
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    assert tasks.column("task").to_pylist() == ["put the bowl on the plate", "open the drawer"]
    assert tasks.column("task_index").to_pylist() == [0, 1]

    episodes = pq.read_table(folder / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    assert [e["episode_index"] for e in episodes] == [0, 1, 2]
    assert [e["length"] for e in episodes] == lengths
    starts = np.cumsum([0, *lengths[:-1]])
    assert [e["dataset_from_index"] for e in episodes] == starts.tolist()
    for key in video_keys:
        assert [e[f"videos/{key}/from_timestamp"] for e in episodes] == (starts / FPS).tolist()
        assert [e[f"videos/{key}/to_timestamp"] for e in episodes] == ((starts + lengths) / FPS).tolist()
        import av

        with av.open(str(folder / "videos" / key / "chunk-000" / "file-000.mp4")) as container:
            stream = container.streams.video[0]
            times = sorted(float(frame.pts * stream.time_base) for frame in container.decode(stream))
        assert stream.codec_context.name in ("libdav1d", "av1", "libaom-av1")
        np.testing.assert_allclose(times, np.arange(36) / FPS, atol=1e-6)  # constant rate from 0

    stats = json.loads((folder / "meta" / "stats.json").read_text())
    assert np.array(stats["observation.images.agentview"]["mean"]).shape == (3, 1, 1)
    assert 0.0 <= np.array(stats["observation.images.agentview"]["max"]).max() <= 1.0
    assert stats["action"]["count"] == [36] and len(stats["action"]["q50"]) == 7
    actions = np.concatenate([d.actions for d in demos])
    np.testing.assert_allclose(stats["action"]["mean"], actions.mean(0), rtol=1e-5)


def test_stored_trials_keep_reward_judge_and_weights_version(tmp_path):
    rng = np.random.default_rng(0)
    trials = []
    for n, (reward, judge) in enumerate(((1.0, "operator"), (0.0, "libero_success"))):
        queries = 4 + n
        trajectory = Trajectory(
            obs={
                OBS_STATE: torch.as_tensor(rng.normal(size=(queries, 11)), dtype=torch.float32),
                OBS_IMAGE_AGENTVIEW: torch.as_tensor(rng.integers(0, 255, (queries, 16, 16, 3)), dtype=torch.uint8),
            },
            scored=torch.randn(queries, 4, 7),
            log_probs=torch.randn(queries, 4),
            mask=torch.ones(queries, 4, dtype=torch.bool),
            num_steps=4 * queries,
        )
        trials.append(
            StoredTrial(
                f"it0001-g000-c000-k{n}-abc", 1, 0, 0, "libero_spatial/0/init00", reward, judge, 3 + n, trajectory
            )
        )
    store = TrialStore(tmp_path / "run" / "trials")  # as the ROS trainer stores them
    for trial in trials:
        store.save(trial)
    assert main(["export-lerobot", "--trials", str(tmp_path / "run"), "--out", str(tmp_path / "trials")]) == 0
    info, episodes = lerobot_data.read_dataset(tmp_path / "trials")
    assert info["fps"] == 5 and info["total_episodes"] == 2
    for trial, episode in zip(trials, episodes):
        frames = episode.frames
        assert set(frames["ript.trial_id"]) == {trial.trial_id} and set(frames["ript.judge"]) == {trial.reward_source}
        assert set(frames["ript.weights_version"]) == {trial.weights_version}
        assert frames["next.reward"][-1] == trial.reward and frames["next.done"][-1]
        np.testing.assert_allclose(frames["ript.log_prob"], trial.trajectory.log_probs.numpy())
        np.testing.assert_allclose(frames["observation.state"], trial.trajectory.obs[OBS_STATE].numpy())
        assert frames["ript.scored"].shape == (len(frames["ript.log_prob"]), 28)
        assert episode.videos["observation.images.agentview"].shape == (len(frames["ript.log_prob"]), 16, 16, 3)
        assert episode.task == trial.context_id


def test_ript_sft_reads_a_lerobot_folder_and_export_refuses_to_overwrite(demos, tmp_path):
    write_demos(tmp_path / "hdf5" / "demo.hdf5", [make_demo(length=20, seed=i) for i in range(2)])
    assert main(["export-lerobot", "--demos", str(tmp_path / "hdf5"), "--out", str(tmp_path / "ds")]) == 0
    assert (
        main(
            [
                "sft",
                "--demos",
                str(tmp_path / "ds"),
                "--input-mode",
                "state",
                "--hidden-dim",
                "32",
                "--num-layers",
                "1",
                "--chunk-size",
                "4",
                "--steps",
                "3",
                "--batch-size",
                "8",
                "--out",
                str(tmp_path / "sft"),
                "--no-progress",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert (next((tmp_path / "sft").iterdir()) / "policy.pt").is_file()
    with pytest.raises(FileExistsError):
        main(["export-lerobot", "--demos", str(tmp_path / "hdf5"), "--out", str(tmp_path / "ds")])


def test_reader_refuses_what_it_cannot_read(folder, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(folder, old)
    info = json.loads((old / "meta" / "info.json").read_text())
    (old / "meta" / "info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(lerobot_data.LeRobotFormatError, match="v2.1"):
        lerobot_data.read_dataset(old)
    short = tmp_path / "short"
    shutil.copytree(folder, short)
    (short / "meta" / "info.json").write_text(json.dumps({**info, "total_frames": 35}))
    with pytest.raises(lerobot_data.LeRobotFormatError, match="frames"):
        lerobot_data.read_dataset(short)
