"""LOOP learns: on the sparse-success reach task success rises from <= 30 % to >= 80 %."""

import json
import subprocess
import sys

import pytest
import torch

from ript.sim.toy_task import ReachTrainConfig, make_reach_trainer, train_reach


@pytest.mark.parametrize("seed", [0, 1])
def test_loop_raises_success_on_reach_task(seed, tmp_path):
    config = ReachTrainConfig()
    config.task.seed = config.train.seed = config.train.sampler.seed = seed
    history = train_reach(config, tmp_path)
    before, after = history[0]["eval/success_rate"], history[-1]["eval/success_rate"]
    assert before <= 0.30, f"task too easy for the untrained policy: {before:.2f}"
    assert after >= 0.80, f"LOOP did not learn: {before:.2f} -> {after:.2f}"
    # Dynamic sampling did its job: the first batches rejected uninformative groups.
    assert sum(m.get("sampler/groups_rejected", 0) for m in history[1:4]) > 0
    assert all(m["sampler/stop_reason"] in ("complete", "all_contexts_solved") for m in history[1:])


def test_without_updates_nothing_improves(tmp_path):
    """Control: the same run with a zero learning rate stays where it started."""
    config = ReachTrainConfig()
    config.train.iterations, config.train.learning_rate = 5, 0.0
    history = train_reach(config, tmp_path)
    assert history[-1]["eval/success_rate"] == pytest.approx(history[0]["eval/success_rate"])


def test_ript_toy_cli_writes_run_outputs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ript.cli.main", "toy", "--iterations", "2", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    run_dirs = list(tmp_path.iterdir())
    assert len(run_dirs) == 1
    rows = [json.loads(line) for line in (run_dirs[0] / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert "loss/policy" in rows[1] and "sampler/groups_rejected" in rows[1]
    assert (run_dirs[0] / "learning_curve.png").stat().st_size > 1000
    config = json.loads((run_dirs[0] / "config.json").read_text())
    assert config["train"]["sampler"]["group_size"] == 8 and config["train"]["loop"]["clip_low"] == 0.2
    assert list((run_dirs[0] / "tb").glob("events.out.tfevents.*"))
    assert "success rate" in result.stdout


def test_env_step_budget_stops_the_run_and_evaluates_last(tmp_path):
    config = ReachTrainConfig()
    config.train.iterations, config.train.eval_every = 30, 10
    steps_per_group = config.train.sampler.group_size * config.task.episode_steps
    config.train.max_env_steps = (
        3 * config.train.sampler.batch_size // config.train.sampler.group_size * steps_per_group
    )  # ~3 iterations when every group is informative
    history = train_reach(config, tmp_path)
    assert 1 <= history[-1]["iteration"] < 30
    assert history[-1]["env_steps"] >= config.train.max_env_steps > history[-2]["env_steps"]
    assert "eval/success_rate" in history[-1]  # the budget's last iteration is evaluated


def test_the_env_step_budget_also_ends_a_collection_mid_iteration(tmp_path):
    config = ReachTrainConfig()
    config.train.iterations, config.train.eval_every, config.train.parallel_groups = 5, 0, 1
    steps_per_group = config.train.sampler.group_size * config.task.episode_steps
    config.train.max_env_steps = 2 * steps_per_group  # a batch needs 8 mixed groups: at least 8 groups
    history = train_reach(config, tmp_path)
    last = history[-1]
    assert last["iteration"] == 1 and last["sampler/stop_reason"] == "env_step_budget"
    assert last["env_steps"] == config.train.max_env_steps and last["sampler/trials"] == 16


def test_frozen_parameters_stay_put_while_the_rest_learns(tmp_path):
    config = ReachTrainConfig()
    config.train.iterations, config.train.eval_every = 2, 0
    config.train.frozen_parameters = ["log_scale"]
    trainer = make_reach_trainer(config, tmp_path, tensorboard=False)
    start = {name: p.detach().clone() for name, p in trainer.policy.named_parameters()}
    trainer.run(progress=False)
    trainer.close()
    assert sum(r.get("stats/num_minibatches", 0) for r in trainer.history) > 0
    now = dict(trainer.policy.named_parameters())
    assert torch.equal(now["log_scale"], start["log_scale"])
    assert any(not torch.equal(now[name], start[name]) for name in start if name != "log_scale")


def test_an_update_stopped_at_its_first_step_is_reported(tmp_path, caplog):
    """A learning rate too large for the trust region makes target_kl stop every update after
    one optimizer step: the run then barely learns, so the log says why."""

    def run(learning_rate, name):
        config = ReachTrainConfig()
        config.train.iterations, config.train.eval_every = 1, 0
        config.train.learning_rate = learning_rate
        config.train.loop.target_kl = 0.01
        trainer = make_reach_trainer(config, tmp_path / name, tensorboard=False)
        with caplog.at_level("WARNING", logger="ript.train"):
            trainer.run(progress=False)
        trainer.close()
        return trainer.history[-1]

    caplog.clear()
    gentle = run(1e-4, "gentle")
    assert gentle["stats/num_minibatches"] > 1 and "target_kl stopped" not in caplog.text
    harsh = run(1.0, "harsh")
    assert harsh["stats/num_minibatches"] <= 1 and harsh["stats/stopped_early"] == 1.0
    assert "target_kl stopped the update after" in caplog.text and "learning_rate" in caplog.text


def test_without_progress_bars_the_log_says_what_each_iteration_did(tmp_path, caplog, monkeypatch):
    from ript.core import train as train_module

    monkeypatch.setattr(train_module, "HEARTBEAT_S", 0.0)  # every collection step says where it is
    config = ReachTrainConfig()
    config.train.iterations, config.train.eval_every = 2, 0
    trainer = make_reach_trainer(config, tmp_path, tensorboard=False)
    with caplog.at_level("INFO", logger="ript.train"):
        trainer.run(progress=False)
    trainer.close()
    lines = [record.getMessage() for record in caplog.records if record.name == "ript.train"]
    last = trainer.history[-1]
    summary = next(line for line in lines if line.startswith("iteration 2: ") and "trials" in line)
    assert summary.startswith(f"iteration 2: {last['sampler/trials']:.0f} trials, {last['sampler/mixed_groups']:.0f}")
    assert f"KL after update {last['stats/approx_kl_final']:.3f}" in summary
    assert summary.endswith(f"{last['env_steps']:,.0f} env steps, {last['time/iteration_s']:.0f} s")
    assert any(line.startswith("iteration 1: collecting ") for line in lines)


def _reach_run(tmp_path, name, learning_rate, adapt, iterations=2):
    config = ReachTrainConfig()
    config.train.iterations, config.train.eval_every = iterations, 0
    config.train.learning_rate, config.train.adapt_learning_rate = learning_rate, adapt
    config.train.loop.target_kl = 0.01
    trainer = make_reach_trainer(config, tmp_path / name, tensorboard=False)
    trainer.run(progress=False)
    trainer.close()
    return config, trainer


def test_a_stalled_update_is_redone_at_a_lower_learning_rate(tmp_path):
    """At a learning rate whose first Adam step leaves the trust region, a fixed rate keeps nothing
    in any iteration; the adapted one redoes the update at half the rate until steps are kept,
    and carries that rate into the next iteration."""
    _, fixed = _reach_run(tmp_path, "fixed", 3e-3, adapt=False)
    assert [r["stats/num_minibatches"] for r in fixed.history[1:]] == [0.0, 0.0]
    config, adapted = _reach_run(tmp_path, "adapted", 3e-3, adapt=True)
    first, second = adapted.history[1:]
    assert first["train/lr_halvings"] >= 1 and first["stats/num_minibatches"] >= 1
    assert first["train/learning_rate"] == pytest.approx(3e-3 / 2 ** first["train/lr_halvings"])
    # What the redone update left behind moved far less than the step the fixed rate undid.
    assert first["stats/approx_kl_final"] < fixed.history[1]["stats/approx_kl_at_stop"] / 2
    assert second["train/learning_rate"] <= first["train/learning_rate"] and second["stats/num_minibatches"] >= 1

    # A resumed run carries the adapted rate on; a resumed run given another rate takes that one.
    resumed = make_reach_trainer(config, tmp_path / "adapted", tensorboard=False)
    assert resumed.resume() and resumed.learning_rate == pytest.approx(adapted.learning_rate)
    resumed.close()
    config.train.learning_rate = 1e-4
    changed = make_reach_trainer(config, tmp_path / "adapted", tensorboard=False)
    assert changed.resume() and changed.learning_rate == pytest.approx(1e-4)
    changed.close()
