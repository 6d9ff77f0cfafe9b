"""Short real runs of `ript sft`, `ript calibrate-scale` and `ript export-onnx`, and the language encoder."""

from __future__ import annotations

import numpy as np
from vla_helpers import INSTRUCTION, make_demo, write_demo_file

from ript.cli.main import main
from ript.policies.checkpoint import load_checkpoint, read_checkpoint
from ript.policies.libero_data import read_demos, state_dim, state_features, write_demos


def test_sft_calibrate_export_pipeline(tmp_path, capsys):
    demos = write_demo_file(tmp_path / "demos", num_demos=2)
    out = tmp_path / "runs"
    rc = main(
        [
            "sft",
            "--demos",
            str(demos.parent),
            "--input-mode",
            "state",
            "--hidden-dim",
            "32",
            "--num-layers",
            "1",
            "--chunk-size",
            "4",
            "--execute-steps",
            "2",
            "--steps",
            "40",
            "--batch-size",
            "16",
            "--lr",
            "2e-3",
            "--out",
            str(out),
            "--no-progress",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    run_dir = next(out.iterdir())
    checkpoint = run_dir / "policy.pt"
    assert checkpoint.is_file() and (run_dir / "loss_curve.png").stat().st_size > 1000
    assert (run_dir / "metrics.jsonl").is_file() and (run_dir / "config.json").is_file()
    payload = read_checkpoint(checkpoint)
    assert payload["config"]["state_dim"] == state_dim(7) and payload["config"]["input_mode"] == "state"
    assert len(payload["stats"]["state_mean"]) == state_dim(7)
    embedding = np.asarray(payload["instruction_embeddings"][INSTRUCTION])
    assert embedding.shape == (384,) and abs(np.linalg.norm(embedding) - 1.0) < 1e-4  # real MiniLM, unit-norm

    scale_before = load_checkpoint(checkpoint)[0].head.scale_head[-1].bias.detach().clone()
    assert (
        main(
            [
                "calibrate-scale",
                "--checkpoint",
                str(checkpoint),
                "--demos",
                str(demos),
                "--steps",
                "30",
                "--no-progress",
            ]
        )
        == 0
    )
    calibrated, payload = load_checkpoint(checkpoint)
    assert not np.allclose(calibrated.head.scale_head[-1].bias.detach().numpy(), scale_before.numpy())
    assert payload["metadata"]["scale_calibration"]["steps"] == 30
    assert (run_dir / "scale_curve.png").is_file()

    assert main(["export-onnx", "--checkpoint", str(checkpoint), "--check"]) == 0
    assert (run_dir / "policy.pt.onnx" / "policy.onnx").is_file()
    assert "parity" in capsys.readouterr().out

    # Fine-tuning on one other demo keeps the normalisation the network was pre-trained with.
    one = write_demos(tmp_path / "one" / "other_demo.hdf5", [make_demo(seed=7)])
    assert (
        main(
            [
                "sft",
                "--demos",
                str(one),
                "--init",
                str(checkpoint),
                "--steps",
                "5",
                "--batch-size",
                "8",
                "--out",
                str(tmp_path / "finetune"),
                "--no-progress",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    tuned, tuned_payload = load_checkpoint(next((tmp_path / "finetune").iterdir()) / "policy.pt")
    assert tuned_payload["stats"]["state_mean"] == payload["stats"]["state_mean"]
    assert np.allclose(tuned.encoder.state.state_mean.numpy(), calibrated.encoder.state.state_mean.numpy())
    own_mean = state_features(read_demos(one)[0].obs).mean(0)  # what the new demo alone would give
    assert not np.allclose(tuned.encoder.state.state_mean.numpy(), own_mean, atol=1e-3)


def test_language_encoder_caches(monkeypatch):
    from ript.policies.encoders import LanguageEncoder

    encoder = LanguageEncoder()
    first = encoder.embed(["pick up the bowl", "open the drawer"])
    assert first.shape == (2, 384) and first.dtype == np.float32
    assert float(first[0] @ first[1]) < 0.99  # different instructions, different embeddings
    model = encoder._model
    monkeypatch.setattr(model, "encode", lambda *a, **k: (_ for _ in ()).throw(AssertionError("not cached")))
    np.testing.assert_array_equal(encoder("pick up the bowl"), first[0])
    # A cache alone (e.g. a checkpoint's embeddings) needs no model.
    offline = LanguageEncoder(cache={"go": [0.5] * 384})
    assert offline("go").shape == (384,) and offline._model is None


def test_sft_set_reaches_fields_the_flags_do_not(tmp_path):
    import json

    import pytest

    demos = write_demo_file(tmp_path / "demos", num_demos=1)
    out = tmp_path / "runs"
    assert (
        main(
            [
                "sft",
                "--demos",
                str(demos),
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
                str(out),
                "--no-progress",
                "--threads",
                "1",
                "--set",
                "sft.weight_decay=0",
                "--set",
                "sft.steps=2",
                "--set",
                "policy.regression.gripper_temperature=0.5",
            ]
        )
        == 0
    )
    run_dir = next(out.iterdir())
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["sft"]["weight_decay"] == 0 and saved["sft"]["steps"] == 2  # --set wins over --steps
    assert read_checkpoint(run_dir / "policy.pt")["config"]["regression"]["gripper_temperature"] == 0.5
    with pytest.raises(SystemExit, match="must start with one of sft., policy."):
        main(["sft", "--demos", str(demos), "--set", "steps=2", "--out", str(out)])
    with pytest.raises(ValueError, match="unknown keys \\['weight_dekay'\\]"):
        main(
            [
                "sft",
                "--demos",
                str(demos),
                "--input-mode",
                "state",
                "--set",
                "sft.weight_dekay=0",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
