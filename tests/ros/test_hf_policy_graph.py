"""`ript up sim` on a Hugging Face VLA (policy.type=hf_vla: a tiny SmolVLM-architecture model built
and saved locally, LoRA rank 4): the policy node serves it from rendered LIBERO cameras, the trainer
re-scores and updates it, over real DDS. One iteration, the simulator judging."""

from __future__ import annotations

import json
import time

import pytest
import torch
from test_sim_graph import SimGraph

from ript.core.constants import OBS_IMAGE_AGENTVIEW
from ript.core.trial_store import TrialStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hf_assets(tmp_path_factory):
    from ript.policies.checkpoint import save_checkpoint
    from ript.policies.hf_backbones import build_backbone
    from ript.policies.hf_vla import HFVLAConfig, HFVLAPolicy
    from ript.sim.contexts import save_contexts, training_contexts

    folder = tmp_path_factory.mktemp("hf_graph")
    backbone = build_backbone("smolvlm", "tiny", folder / "smolvlm")
    torch.manual_seed(0)
    config = HFVLAConfig(
        backbone=str(backbone), hidden_dim=32, num_layers=1, num_heads=2, chunk_size=4, image_size=32,
        max_prompt_tokens=64, lora={"rank": 4, "alpha": 8},
    )  # fmt: skip
    save_checkpoint(folder / "tiny.ckpt", HFVLAPolicy(config))
    save_contexts(folder / "contexts.npz", training_contexts("libero_spatial", [0, 1], per_task=1, seed=0))
    return folder


def test_policy_node_serves_and_trainer_updates_a_hugging_face_vla(ros, hf_assets, tmp_path, graphs):
    run_dir = tmp_path / "run"
    graph = SimGraph(hf_assets, run_dir, sim_reward="true", dynamic="false", iterations="1", render="true")
    graphs.append(graph)
    checkpoint = run_dir / "checkpoints" / "iter_000001.ckpt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists():
        assert graph.alive(), graph.stop()[-3000:]
        assert time.monotonic() < deadline, f"no iteration in time; log:\n{graph.stop()[-4000:]}"
        time.sleep(0.2)
    log = graph.stop()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1] and rows[0]["sampler/trials"] == 4, log[-3000:]
    store = TrialStore(run_dir / "trials")
    trials = [store.read(trial_id) for trial_id in store.trial_ids()]
    assert len(trials) == 4
    # The node queried the VLM on rendered frames, which the trial keeps (what the trainer re-scored).
    assert all(t.trajectory.obs[OBS_IMAGE_AGENTVIEW].shape[1:] == (32, 32, 3) for t in trials)
