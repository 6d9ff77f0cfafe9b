"""The "hf_vla" policy type on tiny, randomly initialised Hugging Face VLMs (Idefics3 = SmolVLM's
architecture, PaliGemma) saved to a temp dir and loaded through `from_pretrained(<dir>)`: the policy
contract, LoRA-only training, adapter checkpoints, SFT and calibration through the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from vla_helpers import INSTRUCTION, write_demo_file

from ript.cli.main import main
from ript.core.constants import OBS_IMAGE_AGENTVIEW, OBS_IMAGE_WRIST, OBS_LANGUAGE, OBS_STATE
from ript.core.loop import LoopBatch, LoopConfig, LoopUpdater
from ript.core.policy import executed_mask
from ript.policies.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from ript.policies.hf_backbones import build_backbone
from ript.policies.hf_vla import HFVLAConfig, HFVLAPolicy
from ript.policies.libero_data import read_demos
from ript.policies.sft import DemoDataset, SFTConfig, calibrate_scale

ARCHITECTURES = ("smolvlm", "paligemma")


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    root = tmp_path_factory.mktemp("backbones")
    return {arch: build_backbone(arch, "tiny", root / arch) for arch in ARCHITECTURES}


def tiny_policy(backbone, head: str = "regression", **overrides) -> HFVLAPolicy:
    settings = dict(
        backbone=str(backbone),
        hidden_dim=32,
        num_layers=1,
        num_heads=2,
        chunk_size=4,
        image_size=32,
        max_prompt_tokens=48,
        head=head,
        lora={"rank": 4, "alpha": 8},
        tokenized={"fsq_levels": (5, 4), "tokens_per_chunk": 2, "tokenizer_hidden_dim": 32},
    )
    settings.update(overrides)
    torch.manual_seed(0)
    return HFVLAPolicy(HFVLAConfig(**settings))


def observation(policy: HFVLAPolicy, batch: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    prompts = policy.encode_instructions([INSTRUCTION, "open the top drawer", "pick up the bowl"][:batch])

    def image():
        return torch.randint(0, 256, (batch, 32, 32, 3), generator=generator, dtype=torch.uint8)

    return {
        OBS_STATE: torch.randn(batch, 8, generator=generator),
        OBS_IMAGE_AGENTVIEW: image(),
        OBS_IMAGE_WRIST: image(),
        OBS_LANGUAGE: torch.from_numpy(prompts),
    }


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("head", ["regression", "tokenized"])
def test_samples_are_scored_exactly_and_the_first_loop_ratio_is_one(backbones, arch, head):
    policy = tiny_policy(backbones[arch], head)
    obs = observation(policy)
    sample = policy.sample(obs, torch.Generator().manual_seed(1))
    assert sample.actions.shape == (3, 4, 7)
    assert torch.allclose(policy.log_prob(obs, sample.scored), sample.log_probs, atol=1e-5)
    assert policy.act(obs).abs().max() <= 1.0
    # The images and the instruction reach the action: other pixels or another prompt move the mean.
    other = dict(obs, **{OBS_IMAGE_AGENTVIEW: 255 - obs[OBS_IMAGE_AGENTVIEW]})
    assert not torch.allclose(policy.log_prob(other, sample.scored), sample.log_probs)
    swapped = dict(obs, **{OBS_LANGUAGE: obs[OBS_LANGUAGE].flip(0)})
    assert not torch.allclose(policy.log_prob(swapped, sample.scored)[0], sample.log_probs[0])

    # One LOOP update: the ratio of the first epoch is exactly 1 (same distribution sampled and scored).
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    updater = LoopUpdater(
        policy.log_prob,
        params,
        optimizer,
        LoopConfig(ppo_epochs=1, minibatch_size=3, loss_normalization="token", target_kl=None),
    )
    steps = torch.full((3,), 4)
    batch = LoopBatch(
        obs=obs,
        scored=sample.scored,
        logp_old=sample.log_probs,
        mask=executed_mask(steps, sample.log_probs.shape[1], policy.scores_per_step),
        advantages=torch.tensor([1.0, -0.5, -0.5]),
    )
    stats = updater.update(batch)
    assert stats["stats/ratio_mean"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_lora_trains_adapters_and_heads_only(backbones, arch):
    policy = tiny_policy(backbones[arch])
    names = {name for name, p in policy.named_parameters() if p.requires_grad}
    vlm_trainable = {name for name in names if name.startswith("encoder.vlm.")}
    assert vlm_trainable and all(".lora_" in name for name in vlm_trainable)
    # Adapters sit on the language model only: the vision tower is frozen by default.
    assert not any("vision" in name for name in vlm_trainable)
    base = {name: p.detach().clone() for name, p in policy.named_parameters() if name.startswith("encoder.vlm.")}

    obs = observation(policy)
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        mean, _ = policy.regression_params(obs)
        loss = (mean - 0.5).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    changed = {name for name, p in policy.named_parameters() if name in base and not torch.equal(p, base[name])}
    assert changed and changed <= vlm_trainable  # only adapters moved inside the VLM


def test_unfrozen_vision_and_rank_zero(backbones):
    unfrozen = tiny_policy(backbones["smolvlm"], freeze_vision=False)
    assert any(p.requires_grad for name, p in unfrozen.named_parameters() if "vision_model" in name)
    frozen_vlm = tiny_policy(backbones["smolvlm"], lora={"rank": 0})
    assert not any(p.requires_grad for name, p in frozen_vlm.named_parameters() if name.startswith("encoder.vlm."))
    assert any(p.requires_grad for p in frozen_vlm.parameters())  # projection, trunk, heads


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_checkpoints_hold_adapters_and_name_the_base_by_hash(backbones, arch, tmp_path):
    policy = tiny_policy(backbones[arch])
    with torch.no_grad():  # adapters away from their zero init, so a lost adapter would show
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    path = save_checkpoint(tmp_path / "policy.pt", policy, stats={"state_mean": [0.0] * 8})
    payload = read_checkpoint(path)
    assert payload["policy_type"] == "hf_vla"
    assert payload["config"]["backbone_sha256"] and payload["config"]["backbone"] == str(backbones[arch].resolve())
    stored = payload["state_dict"]
    assert not any(name.startswith("encoder.vlm.") and ".lora_" not in name for name in stored)
    stored_numel = sum(v.numel() for v in stored.values())
    assert stored_numel < 0.5 * sum(p.numel() for p in policy.parameters())

    loaded, _ = load_checkpoint(path)
    assert isinstance(loaded, HFVLAPolicy)
    obs = observation(policy)
    assert torch.equal(loaded.act(obs), policy.eval().act(obs))

    # A checkpoint whose base model changed on disk is refused, naming why.
    changed = tmp_path / "changed"
    shutil.copytree(backbones[arch], changed)
    config_file = changed / "config.json"
    config = json.loads(config_file.read_text())
    config["note"] = "edited"
    config_file.write_text(json.dumps(config))
    moved = read_checkpoint(path)
    moved["config"]["backbone"] = str(changed)
    with pytest.raises(ValueError, match="not the one this policy was trained on"):
        HFVLAPolicy(HFVLAConfig.from_dict(moved["config"]))
    moved["config"]["backbone"] = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        HFVLAPolicy(HFVLAConfig.from_dict(moved["config"]))
    # Adapters for other layers or of another rank do not load silently.
    other = tiny_policy(backbones[arch], lora={"rank": 4, "alpha": 8, "targets": ("q_proj",)})
    with pytest.raises(RuntimeError, match="does not fit"):
        other.load_state_dict(stored)
    with pytest.raises(RuntimeError, match="size mismatch"):
        tiny_policy(backbones[arch], lora={"rank": 2, "alpha": 4}).load_state_dict(stored)


def test_prompts_are_fixed_length_and_long_ones_are_refused(backbones):
    policy = tiny_policy(backbones["smolvlm"], max_prompt_tokens=48)
    prompts = policy.encode_instructions(["a", INSTRUCTION])
    assert prompts.shape == (2, 48) and (prompts[0] >= 0).sum() < (prompts[1] >= 0).sum()
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        policy.encode_instructions([" ".join(["bowl"] * 60)])
    with pytest.raises(ValueError, match="backbone"):
        HFVLAConfig()


def test_sft_and_calibration_through_the_cli(backbones, tmp_path):
    demos = write_demo_file(tmp_path / "demos", num_demos=2)
    out = tmp_path / "runs"
    rc = main(
        [
            "sft",
            "--demos",
            str(demos),
            "--chunk-size",
            "4",
            "--hidden-dim",
            "32",
            "--num-layers",
            "1",
            "--image-size",
            "32",
            "--steps",
            "60",
            "--batch-size",
            "16",
            "--lr",
            "3e-3",
            "--image-shift",
            "0",
            "--out",
            str(out),
            "--no-progress",
            "--threads",
            "1",
            "--set",
            "policy.type=hf_vla",
            "--set",
            f"policy.backbone={backbones['smolvlm']}",
            "--set",
            "policy.max_prompt_tokens=48",
            "--set",
            "policy.lora.rank=4",
            "--set",
            "policy.num_heads=2",
        ]
    )
    assert rc == 0
    run_dir = next(out.iterdir())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss/sft"] for row in rows if "loss/sft" in row]
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5])  # it fits the demos
    checkpoint = run_dir / "policy.pt"
    payload = read_checkpoint(checkpoint)
    assert payload["policy_type"] == "hf_vla" and payload["config"]["lora"]["rank"] == 4
    prompt = np.asarray(payload["instruction_embeddings"][INSTRUCTION])
    assert prompt.shape == (48,) and np.all(prompt[prompt >= 0] == np.round(prompt[prompt >= 0]))  # token ids

    assert (
        main(
            [
                "calibrate-scale",
                "--checkpoint",
                str(checkpoint),
                "--demos",
                str(demos),
                "--steps",
                "10",
                "--no-progress",
            ]
        )
        == 0
    )
    calibrated, payload = load_checkpoint(checkpoint)
    assert payload["metadata"]["scale_calibration"]["steps"] == 10
    # Calibration freezes everything but the scale head for a while, then gives back exactly what was
    # trainable: the base VLM stays frozen.
    trainable = {name: p.requires_grad for name, p in calibrated.named_parameters()}
    dataset = DemoDataset(read_demos(demos), calibrated.config, payload["instruction_embeddings"])
    calibrate_scale(calibrated, dataset, SFTConfig(steps=2, batch_size=4), progress=False)
    assert {name: p.requires_grad for name, p in calibrated.named_parameters()} == trainable
    # The ONNX path is for the compact VLA: refused with a reason, not a crash deep in the exporter.
    with pytest.raises(SystemExit, match="hf_vla policy; ONNX export covers the compact VLA"):
        main(["export-onnx", "--checkpoint", str(checkpoint)])


def test_type_overrides_are_checked(tmp_path):
    demos = write_demo_file(tmp_path / "demos", num_demos=1)
    with pytest.raises(SystemExit, match="unknown policy type 'nope'"):
        main(["sft", "--demos", str(demos), "--steps", "1", "--set", "policy.type=nope", "--out", str(tmp_path)])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (bfloat16 autocast of the VLM)")
def test_on_cuda_under_bf16_autocast_samples_are_still_scored_exactly(backbones):
    policy = tiny_policy(backbones["smolvlm"]).to("cuda")
    obs = {key: value.to("cuda") for key, value in observation(policy).items()}
    sample = policy.sample(obs, torch.Generator().manual_seed(1))
    assert sample.actions.device.type == "cuda"
    assert torch.allclose(policy.log_prob(obs, sample.scored), sample.log_probs, atol=1e-4)
