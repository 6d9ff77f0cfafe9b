"""Evaluation protocol on 2 episodes, with the scripted expert and with a `Policy`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ript.policies.libero_data import state_dim
from ript.sim.eval import evaluate, save_report, wilson_interval
from ript.sim.expert import ScriptedExpert


def test_wilson_interval():
    low, high = wilson_interval(0, 50)
    assert low == 0.0 and 0.07 < high < 0.08  # 7.1 %: the rule of three's neighbourhood
    low, high = wilson_interval(25, 50)
    assert abs((low + high) / 2 - 0.5) < 1e-9 and 0.36 < low < 0.37
    assert wilson_interval(50, 50)[1] == 1.0


@pytest.mark.slow
def test_evaluate_expert_two_episodes(vector_env, tmp_path):
    report = evaluate(
        ScriptedExpert(),
        "libero_spatial",
        [0],
        episodes=2,
        vec=vector_env,
        progress=False,
        policy_name="scripted expert",
    )
    assert report.episodes_per_task == 2 and report.max_steps == 220
    task = report.tasks[0]
    assert task.episodes == 2 and task.successes == 2 and task.success_rate == 1.0
    assert task.ci_low < 1.0 and task.ci_high == 1.0 and task.mean_steps < 220
    paths = save_report(report, tmp_path)
    assert json.loads(paths["json"].read_text())["tasks"][0]["successes"] == 2
    assert "| 0 |" in paths["markdown"].read_text() and paths["png"].stat().st_size > 1000


@pytest.mark.slow
def test_evaluate_untrained_policy_fails(vector_env):
    from ript.policies.mlp_policy import MLPPolicy, MLPPolicyConfig

    torch.manual_seed(0)
    policy = MLPPolicy(MLPPolicyConfig(state_dim=state_dim(21), action_dim=7, chunk_size=4))
    report = evaluate(policy, "libero_spatial", [0], episodes=2, vec=vector_env, progress=False)
    assert report.tasks[0].successes == 0 and report.tasks[0].mean_steps == 220
    assert report.tasks[0].failed_init_states == [0, 1]


@pytest.mark.slow
def test_ript_eval_writes_its_report_without_a_bar_when_asked(tmp_path, capsys):
    from ript.cli.main import main

    args = ["eval", "--state-only", "--tasks", "0", "--episodes", "1", "--num-envs", "1", "--out", str(tmp_path)]
    assert main([*args, "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "eval libero_spatial" not in captured.err  # the bar's label
    assert "| **mean** |" in captured.out
    result = json.loads((tmp_path / "libero_spatial" / "eval.json").read_text())
    assert result["policy"] == "scripted expert" and result["tasks"][0]["episodes"] == 1


def test_ript_eval_samples_with_the_knobs_it_is_given(tmp_path):
    # `ript eval --stochastic --knob ...`: the sampled success a run with that exploration starts
    # from. The knobs reach the policy the agent samples with; an unknown knob or bad value is refused.
    from ript.cli.eval import parse_knobs
    from ript.policies.checkpoint import save_checkpoint
    from ript.policies.config import VLAConfig
    from ript.policies.vla import build_policy
    from ript.sim.eval import checkpoint_agent

    config = VLAConfig(input_mode="state", state_dim=state_dim(21), hidden_dim=16, num_layers=1, num_heads=2)
    path = save_checkpoint(tmp_path / "p.pt", build_policy(config))
    knobs = parse_knobs(["noise_correlation=0.9", "correlate_across_queries=true", "execute_steps=2"])
    assert knobs == {"noise_correlation": 0.9, "correlate_across_queries": True, "execute_steps": 2}
    agent, _, policy = checkpoint_agent(path, stochastic=True, knobs=knobs)
    assert policy.noise_correlation == 0.9 and agent.queries.links_queries and agent.execute_steps == 2
    _, _, plain = checkpoint_agent(path, stochastic=True)
    assert plain.noise_correlation == 0.0 and not plain.links_queries
    with pytest.raises(ValueError, match="unknown sampling knob"):
        checkpoint_agent(path, knobs={"noise": 0.5})
    with pytest.raises(ValueError, match="noise_correlation"):
        checkpoint_agent(path, knobs={"noise_correlation": 1.5})
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        parse_knobs(["noise_correlation"])


@pytest.mark.slow
def test_ript_eval_films_the_episodes_it_is_asked_for(tmp_path, capsys):
    # `ript eval --videos N`: one upright agentview mp4 per filmed episode, a frame per step plus
    # the first, named by task, benchmark state and outcome; failed ones only unless --videos-of all.
    from ript.cli.main import main
    from ript.policies.lerobot_data import decode_video

    args = ["eval", "--state-only", "--tasks", "0", "--episodes", "2", "--num-envs", "1", "--no-progress"]
    assert main([*args, "--videos", "1", "--videos-of", "all", "--out", str(tmp_path / "all")]) == 0
    result = json.loads((tmp_path / "all" / "libero_spatial" / "eval.json").read_text())
    assert result["tasks"][0]["successes"] == 2  # the scripted expert; with --videos it still renders alike
    videos = result["videos"]
    assert [v.rsplit("/", 1)[-1] for v in videos] == ["task0_state0_success.mp4"]
    frames = decode_video(Path(videos[0]))
    assert frames.shape[1:] == (128, 128, 3) and frames.dtype == np.uint8
    assert 20 < len(frames) <= 221 and frames.std() > 10  # a moving scene, not a blank buffer
    assert main([*args, "--videos", "1", "--out", str(tmp_path / "failed")]) == 0
    assert json.loads((tmp_path / "failed" / "libero_spatial" / "eval.json").read_text())["videos"] == []
    assert not (tmp_path / "failed" / "libero_spatial" / "videos").exists()


class RecordingAgent:
    """An EpisodeAgent that notes the context each episode starts from, then defers to `inner`."""

    def __init__(self, inner):
        self.inner, self.started = inner, []

    def begin(self, trial, context, obs):
        self.started.append(context)
        self.inner.begin(trial, context, obs)

    def act(self, trials, obs):
        return self.inner.act(trials, obs)

    def end(self, trial, result):
        self.inner.end(trial, result)


@pytest.mark.slow
def test_evaluate_runs_the_fresh_placements_it_is_given(vector_env):
    from ript.sim.contexts import evaluation_contexts, validation_contexts

    placements = validation_contexts("libero_spatial", [0], 2, seed=0, apart_from=[])
    agent = RecordingAgent(ScriptedExpert())
    report = evaluate(
        agent, "libero_spatial", [0], 2, vec=vector_env, progress=False, contexts=placements, states="fresh"
    )
    assert sorted(c.index for c in agent.started) == [0, 1] and {c.split for c in agent.started} == {"validation"}
    assert all(any(c is p for p in placements) for c in agent.started)
    benchmark = evaluation_contexts("libero_spatial", [0], 2)
    assert not any(np.array_equal(p.init_state, b.init_state) for p in placements for b in benchmark)
    assert report.states == "fresh" and report.tasks[0].episodes == 2
    with pytest.raises(ValueError, match="asked for"):
        evaluate(agent, "libero_spatial", [1], 2, vec=vector_env, progress=False, contexts=placements)


@pytest.mark.slow
def test_ript_eval_on_validation_placements_says_so(tmp_path, capsys):
    from ript.cli.main import main

    args = ["eval", "--state-only", "--tasks", "0", "--episodes", "1", "--num-envs", "1", "--no-progress"]
    assert main([*args, "--states", "validation", "--context-seed", "3", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "libero_spatial" / "eval.json").read_text())
    assert result["states"] == "fresh validation placements, context_seed 3"
    assert result["tasks"][0]["episodes"] == 1 and result["tasks"][0]["successes"] == 1
    assert "fresh validation placements, context_seed 3" in capsys.readouterr().out


def test_contexts_from_file_takes_the_first_episodes_of_each_asked_task(tmp_path):
    from ript.cli.eval import contexts_from_file
    from ript.sim.contexts import evaluation_contexts, save_contexts

    held = evaluation_contexts("libero_spatial", [0, 1], 3)
    path = save_contexts(tmp_path / "contexts.npz", held)
    chosen = contexts_from_file(path, "libero_spatial", [1], 2)
    assert [(c.task_id, c.index) for c in chosen] == [(1, 0), (1, 1)]
    assert all(np.array_equal(c.init_state, h.init_state) for c, h in zip(chosen, held[3:5]))
    with pytest.raises(SystemExit, match="holds 3 contexts of libero_spatial task 0, --episodes asks for 4"):
        contexts_from_file(path, "libero_spatial", [0], 4)
    with pytest.raises(SystemExit, match="holds 0 contexts of libero_spatial task 2"):
        contexts_from_file(path, "libero_spatial", [2], 1)
    with pytest.raises(SystemExit, match="needs --contexts"):
        contexts_from_file(None, "libero_spatial", [0], 1)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(SystemExit, match="not a contexts file"):
        contexts_from_file(tmp_path / "junk.npz", "libero_spatial", [0], 1)


@pytest.mark.slow
def test_ript_eval_on_a_contexts_file_says_so(tmp_path, capsys):
    from ript.cli.main import main
    from ript.sim.contexts import evaluation_contexts, save_contexts

    path = save_contexts(tmp_path / "contexts.npz", evaluation_contexts("libero_spatial", [0], 1))
    args = ["eval", "--state-only", "--tasks", "0", "--episodes", "1", "--num-envs", "1", "--no-progress"]
    assert main([*args, "--states", "contexts", "--contexts", str(path), "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "libero_spatial" / "eval.json").read_text())
    assert result["states"] == f"contexts of {path}" and result["tasks"][0]["successes"] == 1
    with pytest.raises(SystemExit, match="with --states contexts only"):
        main([*args, "--contexts", str(path), "--out", str(tmp_path)])
