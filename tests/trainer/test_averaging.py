"""average_decay: the run evaluates, checkpoints and exports a moving average of the weights while its
rollouts keep the trained policy; final_learning_rate anneals the learning rate with the env steps."""

import pytest
import torch

from ript.core.learner import AVERAGE_KEY, TrainConfig
from ript.core.safe_io import load_verified
from ript.sim.toy_task import ReachTrainConfig, make_reach_trainer

DECAY = 0.5
ITERATIONS = 3


class RecordingEvaluations:
    """The reach task, remembering the weights each evaluation and each rollout call saw."""

    def __init__(self, task):
        self.task = task
        self.evaluated: list[dict] = []
        self.rolled_out: list[tuple[int, dict]] = []
        self.trainer = None

    @property
    def contexts(self):
        return self.task.contexts

    def rollout(self, policy, contexts, group_size, seed):
        weights = {k: v.clone() for k, v in policy.state_dict().items()}
        self.rolled_out.append((self.trainer.iteration, weights))  # the iteration the weights come from
        return self.task.rollout(policy, contexts, group_size, seed)

    def evaluate(self, policy, seed=0):
        self.evaluated.append({k: v.clone() for k, v in policy.state_dict().items()})
        return self.task.evaluate(policy, seed)


def averaged_trainer(run_dir, iterations=ITERATIONS, decay=DECAY):
    config = ReachTrainConfig()
    config.train.iterations = iterations
    config.train.eval_every = 1
    config.train.sampler.batch_size = 32
    config.train.keep_checkpoints = 10
    config.train.average_decay = decay
    trainer = make_reach_trainer(config, run_dir, tensorboard=False)
    trainer.source = RecordingEvaluations(trainer.source)
    trainer.source.trainer = trainer
    return trainer


def checkpoint(run_dir, iteration):
    return load_verified(run_dir / "checkpoints" / f"iter_{iteration:06d}.ckpt")


def test_evaluations_and_checkpoints_deploy_the_average_of_the_trained_weights(tmp_path):
    trainer = averaged_trainer(tmp_path / "run")
    start = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    trainer.run(progress=False)
    trainer.close()
    source = trainer.source

    expected = start
    assert len(source.evaluated) == ITERATIONS + 1
    for iteration in range(ITERATIONS + 1):
        state = checkpoint(tmp_path / "run", iteration)
        if iteration:  # average <- decay * average + (1 - decay) * trained, after each update
            expected = {k: DECAY * expected[k] + (1 - DECAY) * state["policy"][k] for k in expected}
        for name, value in expected.items():
            torch.testing.assert_close(state[AVERAGE_KEY][name], value, msg=name)
            torch.testing.assert_close(source.evaluated[iteration][name], value, msg=name)
    moved = checkpoint(tmp_path / "run", ITERATIONS)
    assert any(not torch.equal(moved["policy"][k], moved[AVERAGE_KEY][k]) for k in expected), "nothing averaged"
    # rollouts ran the trained weights (the previous iteration's), and the policy keeps them after a run
    assert {iteration for iteration, _ in source.rolled_out} == set(range(ITERATIONS))
    for iteration, weights in source.rolled_out:
        for name, value in checkpoint(tmp_path / "run", iteration)["policy"].items():
            assert torch.equal(weights[name], value), name
    for name, value in trainer.policy.state_dict().items():
        assert torch.equal(value, moved["policy"][name]), name


def test_a_resumed_run_carries_the_average_on(tmp_path):
    whole = averaged_trainer(tmp_path / "whole", iterations=4)
    whole.run(progress=False)
    whole.close()
    first = averaged_trainer(tmp_path / "split", iterations=2)
    first.run(progress=False)
    first.close()
    second = averaged_trainer(tmp_path / "split", iterations=4)
    assert second.resume()
    second.run(progress=False)
    second.close()
    a, b = checkpoint(tmp_path / "whole", 4), checkpoint(tmp_path / "split", 4)
    for name, value in a[AVERAGE_KEY].items():
        torch.testing.assert_close(b[AVERAGE_KEY][name], value, msg=name)


def test_the_learning_rate_falls_linearly_with_env_steps_to_the_final_rate(tmp_path):
    config = ReachTrainConfig()
    config.train.iterations = 20
    config.train.eval_every = 0
    config.train.sampler.batch_size = 32
    config.train.max_env_steps = 2000
    config.train.final_learning_rate = config.train.learning_rate / 10
    trainer = make_reach_trainer(config, tmp_path / "run", tensorboard=False)
    history = trainer.run(progress=False)
    trainer.close()
    rates = [(row["env_steps"], row["train/learning_rate"]) for row in history[1:]]
    assert len(rates) >= 3
    lr, final = config.train.learning_rate, config.train.final_learning_rate
    for env_steps, used in rates:  # adapt_learning_rate is off here (no target_kl): exactly the line
        spent = min(env_steps / config.train.max_env_steps, 1.0)
        assert used == pytest.approx(lr + spent * (final - lr)), env_steps
    assert rates[-1][1] == pytest.approx(final)


def test_annealing_needs_a_budget_and_a_rate_below_the_start():
    with pytest.raises(ValueError, match="needs max_env_steps"):
        TrainConfig(final_learning_rate=1e-6)
    with pytest.raises(ValueError, match="final_learning_rate must be in"):
        TrainConfig(max_env_steps=1000, final_learning_rate=1.0)
    with pytest.raises(ValueError, match="average_decay"):
        TrainConfig(average_decay=1.0)


def test_a_rollback_puts_the_best_evaluations_average_back(tmp_path):
    trainer = averaged_trainer(tmp_path / "run")
    trainer.config.rollback_drop = 0.2
    trainer.run(progress=False)
    for value in trainer.average.values():  # an average that moved on after the best evaluation
        value.add_(0.5)
    fallen_average = {k: v.clone() for k, v in trainer.average.items()}
    best_iteration, _ = trainer.best_evaluation()
    assert trainer.roll_back_if_dropped(-1.0, 99) == {"train/rolled_back_to": float(best_iteration)}
    trainer.close()
    best = load_verified(tmp_path / "run" / "checkpoints" / "best.ckpt")
    fallen = load_verified(tmp_path / "run" / "checkpoints" / "fallen_000099.ckpt")
    for name, value in best[AVERAGE_KEY].items():
        assert torch.equal(trainer.average[name], value), name
        assert torch.equal(fallen[AVERAGE_KEY][name], fallen_average[name]), name
        assert torch.equal(trainer.policy.state_dict()[name], best["policy"][name]), name
