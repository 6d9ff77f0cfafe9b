"""The starter policy of `ript up sim`: its steps run in order, each finished step is kept, and an
interrupted build resumes at the step it was in (the steps themselves are the `ript` subcommands
tested elsewhere; here they are replaced by stand-ins that write what the real ones write). A
shipped starter is used only when its record and file verify."""

import json
import shutil
from pathlib import Path

import pytest

from ript.cli import starter_policy as starter


@pytest.fixture
def calls(monkeypatch, tmp_path):
    made = []

    def fake_ript(*args):
        made.append(args)
        out = Path(args[args.index("--out") + 1])
        if args[0] == "sft":
            (out / "20260101-000000").mkdir(parents=True)
            (out / "20260101-000000" / "policy.pt").write_text(f"policy from {args}")
        elif args[0] == "record-demos":
            out.mkdir(parents=True)
        elif args[0] == "eval":  # what save_report writes: per-task successes of N episodes
            wins = 3 if "--stochastic" in args else 2
            (out / "libero_spatial").mkdir(parents=True)
            (out / "libero_spatial" / "eval.json").write_text(
                json.dumps({"tasks": [{"task_id": 0, "episodes": 4, "successes": wins}]})
            )
        else:
            out.write_text("calibrated")

    monkeypatch.setattr(starter, "_ript", fake_ript)
    monkeypatch.setattr(starter, "set_sampling_knobs", lambda path: made.append(("set-sampling-knobs", str(path))))
    monkeypatch.setattr(starter, "SHIPPED_DIR", tmp_path / "nothing-ships")  # the build path under test
    return made


STEPS = ["record-demos", "sft"] * 4 + ["calibrate-scale", "set-sampling-knobs"]
"""stage 1: demos + SFT, two DAgger rounds (recording + SFT each); then 1 demo + SFT of the task; calibration"""


def test_builds_in_order_then_reuses(tmp_path, calls):
    folder = tmp_path / "starter"
    policy = starter.ensure_starter_policy(folder, "2,6", progress=False)
    assert policy == folder / "policy.pt" and policy.read_text() == "calibrated"
    assert [c[0] for c in calls] == STEPS

    def value(call, flag):
        return call[call.index(flag) + 1]

    def policy_of(step):
        return str(folder / step / "20260101-000000" / "policy.pt")

    # Stage 1 never sees the starter's own tasks; the starter's demo is of those tasks only.
    assert all(value(c, "--tasks") == "0,1,5,8" for c in calls[:6] if c[0] == "record-demos")
    assert value(calls[6], "--tasks") == "2,6" and value(calls[6], "--demos") == "1"
    # Each DAgger round drives with the previous policy and fine-tunes it on everything recorded so far.
    assert value(calls[2], "--learner") == policy_of("sft_stage1") and value(calls[2], "--beta") == "0.5"
    assert value(calls[3], "--init") == policy_of("sft_stage1")
    assert value(calls[4], "--learner") == policy_of("sft_dagger_1") and value(calls[4], "--beta") == "0.3"
    second_sft = calls[5]
    assert [a for a in second_sft[second_sft.index("--demos") + 1 :][:3]] == [
        str(folder / "demos_pretrain"), str(folder / "dagger_1"), str(folder / "dagger_2"),
    ]  # fmt: skip
    # The task's fine-tune starts from the last DAgger policy, at the low learning rate.
    assert value(calls[7], "--init") == policy_of("sft_dagger_2") and value(calls[7], "--lr") == "3e-05"
    assert value(calls[8], "--checkpoint") == policy_of("sft_target")
    assert calls[9] == ("set-sampling-knobs", str(folder / "policy.partial.pt"))
    assert not list(folder.glob("*.partial*")), "every step's output was renamed into place"
    calls.clear()
    assert starter.ensure_starter_policy(folder, "2,6") == policy and calls == []


def test_a_starter_of_every_pretraining_task_is_refused(tmp_path, calls):
    with pytest.raises(SystemExit, match="no pre-training task left"):
        starter.ensure_starter_policy(tmp_path / "starter", "0,1,5,6,8", progress=False)


def test_interrupted_build_resumes_at_its_step(tmp_path, calls):
    folder = tmp_path / "starter"
    starter.ensure_starter_policy(folder, "0", progress=False)
    # As if stopped during the second DAgger recording: its partial output is there, nothing after it.
    (folder / "policy.pt").unlink()
    for later in ("sft_dagger_2", "demos_target", "sft_target"):
        shutil.rmtree(folder / later)
    (folder / "dagger_2").rename(folder / "dagger_2.partial")
    (folder / "dagger_2.partial" / "torn.hdf5").write_text("half a file")
    calls.clear()
    policy = starter.ensure_starter_policy(folder, "0", progress=False)
    assert [c[0] for c in calls] == STEPS[4:]
    assert "--learner" in calls[0], "resumed at the DAgger recording, not at the first demos"
    assert not (folder / "dagger_2" / "torn.hdf5").exists(), "the interrupted try's output was discarded"
    assert policy.exists()


def tiny_checkpoint(path: Path) -> Path:
    from ript.policies.checkpoint import save_checkpoint
    from ript.policies.config import VLAConfig
    from ript.policies.vla import build_policy

    path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(
        path,
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


def test_a_shipped_starter_is_used_only_when_it_verifies(tmp_path, calls, monkeypatch, capsys):
    monkeypatch.setattr(starter, "SHIPPED_DIR", tmp_path / "package")
    built = tiny_checkpoint(tmp_path / "built" / "policy.pt")
    shipped = starter.ship(built, "0", 4, "ript starter --ship")
    record = json.loads((shipped.parent / "starter.json").read_text())
    assert record["success"] == {
        "benchmark_deterministic": {"successes": 2, "episodes": 4},
        "benchmark_sampled": {"successes": 3, "episodes": 4},
    }
    assert record["recipe"] == starter.recipe() and record["command"] == "ript starter --ship"
    calls.clear()
    assert starter.ensure_starter_policy(tmp_path / "runs", "0") == shipped and calls == []
    assert "ships with ript; measured success: benchmark_deterministic 2/4" in capsys.readouterr().out
    # `ript starter --ship` measures a starter built here, never the shipped one itself
    built_here = starter.ensure_starter_policy(tmp_path / "runs", "0", progress=False, use_shipped=False)
    assert built_here == tmp_path / "runs" / "policy.pt" and [c[0] for c in calls][0] == "record-demos"
    capsys.readouterr()

    def refused(edit, why: str) -> None:
        original = (shipped.parent / "starter.json").read_text(), shipped.read_bytes()
        edit()
        calls.clear()
        path = starter.ensure_starter_policy(tmp_path / f"runs_{len(why)}", "0", progress=False)
        assert path != shipped and [c[0] for c in calls][:2] == ["record-demos", "sft"], "a starter was built"
        assert why in capsys.readouterr().out
        (shipped.parent / "starter.json").write_text(original[0])
        shipped.write_bytes(original[1])

    def rewrite(**changes) -> None:
        (shipped.parent / "starter.json").write_text(json.dumps({**record, **changes}))

    refused(lambda: rewrite(format=0), "format 0, this ript reads 1; `ript starter --tasks 0 --rebuild`")
    refused(lambda: rewrite(recipe={**record["recipe"], "target_sft_steps": 1}), "built with another recipe")
    refused(lambda: shipped.write_bytes(shipped.read_bytes()[:-3]), "the shipped starter does not verify")
    other = tiny_checkpoint(tmp_path / "other" / "policy.pt")  # a whole checkpoint, but not the recorded one
    refused(lambda: shipped.write_bytes(other.read_bytes()), "sha256 differs")
    assert starter.shipped_starter("0")[0] == shipped  # restored: verifies again
    assert starter.shipped_starter("1,2")[2] == "no starter policy ships for task(s) 1,2"


def test_ript_starter_without_flags_only_says_which_starter_would_run(tmp_path, calls, monkeypatch, capsys):
    import argparse

    from ript.cli import starter as starter_cli

    def show(tasks: str) -> str:
        parser = argparse.ArgumentParser()
        starter_cli.add_arguments(parser)
        assert starter_cli.run(parser.parse_args(["--tasks", tasks, "--out", str(tmp_path / "runs")])) == 0
        return capsys.readouterr().out

    assert "no starter policy for task(s) 0 yet" in show("0") and calls == [], "showing must build nothing"
    built = tiny_checkpoint(tmp_path / "runs" / "libero_spatial_0" / "policy.pt")
    assert f"{built} (built here" in show("0")
    monkeypatch.setattr(starter, "SHIPPED_DIR", tmp_path / "package")
    shipped = starter.ship(built, "0", 4, "ript starter --ship")
    capsys.readouterr()
    assert f"{shipped} (ships with ript; measured success: benchmark_deterministic 2/4" in show("0")


def test_the_starter_carries_the_sampling_it_is_trained_and_measured_with(tmp_path):
    from ript.policies.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint

    path = tiny_checkpoint(tmp_path / "policy.pt")
    policy, _ = load_checkpoint(path)
    save_checkpoint(path, policy, stats={"state_mean": [0.5] * 5}, metadata={"stage": "sft"})
    starter.set_sampling_knobs(path)
    knobbed, payload = load_checkpoint(path)
    assert knobbed.config.execute_steps == 4 and knobbed.gripper_temperature == 0.5
    assert knobbed.fixed_action_dims == (3, 4, 5)
    assert payload["stats"] == {"state_mean": [0.5] * 5} and payload["metadata"]["stage"] == "sft"
    for name, value in policy.state_dict().items():
        assert (knobbed.state_dict()[name] == value).all(), name
    assert read_checkpoint(path)["config"]["regression"]["gripper_temperature"] == 0.5
