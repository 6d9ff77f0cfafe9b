"""The real trainer node takes the whole training tree: a `config` YAML file (the `train` section of a
`ript train` config) and `train.<field>` parameters for every field, on top of the recipe; what it
runs with is what its run folder's config.json records."""

from __future__ import annotations

import json
import time

import torch
import yaml
from node_process import NodeProcess

from ript.core.learner import TrainConfig


def test_trainer_node_runs_with_the_config_file_and_dotted_parameters(tmp_path, ros_env):
    from ript.policies.checkpoint import save_checkpoint
    from ript.policies.config import VLAConfig
    from ript.policies.vla import build_policy

    torch.manual_seed(0)
    save_checkpoint(
        tmp_path / "tiny.ckpt",
        build_policy(
            VLAConfig(
                input_mode="state",
                state_dim=5,
                use_language=False,
                hidden_dim=16,
                num_layers=1,
                num_heads=2,
                chunk_size=4,
            )
        ),
    )
    (tmp_path / "contexts.yaml").write_text(yaml.safe_dump([{"context_id": "c0", "instruction": "task 0"}]))
    (tmp_path / "train.yaml").write_text(
        yaml.safe_dump(
            {"train": {"sampler": {"group_size": 4, "early_stop_fraction": 0.75}, "loop": {"clip_high": 0.28}}}
        )
    )
    node = NodeProcess(
        "ript.ros.trainer_node",
        tmp_path / "trainer.log",
        checkpoint=tmp_path / "tiny.ckpt",
        contexts_file=tmp_path / "contexts.yaml",
        run_dir=tmp_path / "run",
        config=tmp_path / "train.yaml",
        batch_size=8,
        **{"train.sampler.skip_solved": False, "train.loop.clip_high": 0.3, "train.max_env_steps": 12000},
    )
    try:
        deadline = time.monotonic() + 60
        while "trainer ready" not in node.output():
            assert node.proc.poll() is None and time.monotonic() < deadline, node.output()[-3000:]
            time.sleep(0.1)
    finally:
        node.stop()
    train = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert train["sampler"]["group_size"] == 4 and train["sampler"]["early_stop_fraction"] == 0.75  # the file
    assert train["sampler"]["batch_size"] == 8  # a short name
    assert train["sampler"]["skip_solved"] is False and train["loop"]["clip_high"] == 0.3  # train.<field>
    assert train["max_env_steps"] == 12000
    assert train["learning_rate"] == TrainConfig().learning_rate  # the recipe, where nothing else says
    assert "K=4, B=8" in node.output()
