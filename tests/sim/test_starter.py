"""The starter policy of `ript up sim`: its steps run in order, each finished step is kept, and an
interrupted build resumes at the step it was in (the steps themselves are the `ript` subcommands
tested elsewhere; here they are replaced by stand-ins that write what the real ones write)."""

import shutil
from pathlib import Path

import pytest

from ript_sim import starter


@pytest.fixture
def calls(monkeypatch):
    made = []

    def fake_ript(*args):
        made.append(args)
        out = Path(args[args.index("--out") + 1])
        if args[0] == "sft":
            (out / "20260101-000000").mkdir(parents=True)
            (out / "20260101-000000" / "policy.pt").write_text(f"policy from {args}")
        elif args[0] == "record-demos":
            out.mkdir(parents=True)
        else:
            out.write_text("calibrated")

    monkeypatch.setattr(starter, "_ript", fake_ript)
    return made


def test_builds_in_order_then_reuses(tmp_path, calls):
    policy = starter.ensure_starter_policy(tmp_path / "starter", "0,1", progress=False)
    assert policy == tmp_path / "starter" / "policy.pt" and policy.read_text() == "calibrated"
    assert [c[0] for c in calls] == ["record-demos", "sft", "record-demos", "sft", "calibrate-scale"]
    dagger = calls[2]
    assert dagger[dagger.index("--learner") + 1] == str(tmp_path / "starter" / "sft" / "20260101-000000" / "policy.pt")
    assert dagger[dagger.index("--tasks") + 1] == "0,1"
    assert not list((tmp_path / "starter").glob("*.partial*")), "every step's output was renamed into place"
    calls.clear()
    assert starter.ensure_starter_policy(tmp_path / "starter", "0,1") == policy and calls == []


def test_interrupted_build_resumes_at_its_step(tmp_path, calls):
    folder = tmp_path / "starter"
    starter.ensure_starter_policy(folder, "0", progress=False)
    # As if stopped during the DAgger recording: its partial output is there, nothing after it.
    (folder / "policy.pt").unlink()
    shutil.rmtree(folder / "sft_dagger")
    (folder / "dagger").rename(folder / "dagger.partial")
    (folder / "dagger.partial" / "torn.hdf5").write_text("half a file")
    calls.clear()
    policy = starter.ensure_starter_policy(folder, "0", progress=False)
    assert [c[0] for c in calls] == ["record-demos", "sft", "calibrate-scale"]
    assert "--learner" in calls[0], "resumed at the DAgger recording, not at the first demos"
    assert not (folder / "dagger" / "torn.hdf5").exists(), "the interrupted try's output was discarded"
    assert policy.exists()
