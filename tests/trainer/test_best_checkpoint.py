"""keep_best keeps the best evaluation's checkpoint; rollback_drop puts it back when a later
evaluation falls. The reach task learns in a few iterations; from iteration TURN on its trials are
rewarded for missing the target (a reward that misleads, as a mislabelled success would), so
training drives the evaluated success down and there is something to roll back from."""

import pytest
import torch

from ript.core.learner import BEST_CHECKPOINT, TrainConfig
from ript.core.safe_io import load_verified, save_verified
from ript.sim.toy_task import ReachTrainConfig, make_reach_trainer

TURN = 6
ITERATIONS = 12


class MisleadingAfter:
    """The reach task whose trial rewards are inverted from iteration `turn` on; evaluation stays true."""

    def __init__(self, task, trainer_ref, turn):
        self.task, self.trainer_ref, self.turn = task, trainer_ref, turn

    @property
    def contexts(self):
        return self.task.contexts

    def rollout(self, policy, contexts, group_size, seed):
        groups = self.task.rollout(policy, contexts, group_size, seed)
        if self.trainer_ref[0].iteration + 1 >= self.turn:
            for group in groups:
                for trial in group:
                    trial.reward = 1.0 - trial.reward
        return groups

    def evaluate(self, policy, seed=0):
        return self.task.evaluate(policy, seed)


def run(run_dir, rollback_drop):
    config = ReachTrainConfig()
    config.train.iterations = ITERATIONS
    config.train.sampler.batch_size = 32
    config.train.keep_checkpoints = ITERATIONS + 1
    config.train.rollback_drop = rollback_drop
    trainer = make_reach_trainer(config, run_dir, tensorboard=False)
    holder = [trainer]
    trainer.source = MisleadingAfter(trainer.source, holder, TURN)
    history = trainer.run(progress=False)
    trainer.close()
    return trainer, history


def weights(state):
    return state["policy"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


def test_best_checkpoint_is_the_best_evaluation_and_survives_the_fall(tmp_path):
    trainer, history = run(tmp_path / "run", rollback_drop=0.0)
    evals = {int(r["iteration"]): r["eval/success_rate"] for r in history}
    best_iteration = max(evals, key=lambda i: (evals[i], i))
    assert 0 < best_iteration < ITERATIONS  # it learned, then the misleading reward took it down
    assert evals[ITERATIONS] < evals[best_iteration] - 0.2
    assert trainer.best_evaluation() == (best_iteration, evals[best_iteration])
    assert not any("train/rolled_back_to" in r for r in history)  # off by default
    best = load_verified(tmp_path / "run" / "checkpoints" / BEST_CHECKPOINT)
    assert best["iteration"] == best_iteration
    iterate = load_verified(tmp_path / "run" / "checkpoints" / f"iter_{best_iteration:06d}.ckpt")
    assert_same_weights(weights(best), weights(iterate))


def test_a_drop_rolls_the_policy_back_to_the_best_checkpoint(tmp_path):
    trainer, history = run(tmp_path / "run", rollback_drop=0.2)
    rolled = [r for r in history if "train/rolled_back_to" in r]
    assert rolled, [r["eval/success_rate"] for r in history]
    first = rolled[0]
    target = int(first["train/rolled_back_to"])
    earlier = [r for r in history if r["iteration"] < first["iteration"]]
    assert target == max(earlier, key=lambda r: (r["eval/success_rate"], r["iteration"]))["iteration"]
    assert first["eval/success_rate"] < max(r["eval/success_rate"] for r in earlier) - 0.2
    # the iteration that rolled back saved the best iteration's weights and optimizer, not its own update
    checkpoints = tmp_path / "run" / "checkpoints"
    saved = load_verified(checkpoints / f"iter_{int(first['iteration']):06d}.ckpt")
    best = load_verified(checkpoints / f"iter_{target:06d}.ckpt")
    assert_same_weights(weights(saved), weights(best))
    assert saved["optimizer"]["state"].keys() == best["optimizer"]["state"].keys()
    for key, value in best["optimizer"]["state"].items():
        torch.testing.assert_close(saved["optimizer"]["state"][key]["exp_avg"], value["exp_avg"], rtol=0, atol=0)
    # the weights that fell are kept aside, and they are the ones that evaluated low
    fallen = load_verified(checkpoints / f"fallen_{int(first['iteration']):06d}.ckpt")
    assert fallen["iteration"] == first["iteration"] and fallen["eval/success_rate"] == first["eval/success_rate"]
    trainer.policy.load_state_dict(fallen["policy"])
    assert trainer._evaluate(int(first["iteration"]))["eval/success_rate"] == first["eval/success_rate"]
    # the run keeps its best: it never ends below the best evaluation by more than the drop unnoticed
    assert trainer.best_evaluation()[1] == max(r["eval/success_rate"] for r in history)


def test_no_rollback_to_a_best_checkpoint_of_another_iteration(tmp_path):
    """Killed between the iteration checkpoint and best.ckpt, the file holds an older best: the
    trainer must not load it as if it were the evaluation it claims to be."""
    trainer, history = run(tmp_path / "run", rollback_drop=0.0)
    best_iteration, best_success = trainer.best_evaluation()
    checkpoints = tmp_path / "run" / "checkpoints"
    save_verified(load_verified(checkpoints / "iter_000000.ckpt"), checkpoints / BEST_CHECKPOINT)
    before = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    trainer.config.rollback_drop = 0.2
    assert trainer.roll_back_if_dropped(best_success - 0.5, trainer.iteration + 1) == {}
    assert_same_weights(trainer.policy.state_dict(), before)


def test_a_fall_of_exactly_the_drop_never_rolls_back_and_one_episode_more_does(tmp_path, monkeypatch):
    """Rates are counts over 30 episodes: 26/30 -> 20/30 and 17/30 -> 11/30 both fall by exactly
    0.2 and must be treated alike (float rounding made the first fire and not the second)."""
    trainer, _ = run(tmp_path / "run", rollback_drop=0.0)
    best_iteration, _ = trainer.best_evaluation()
    trainer.config.rollback_drop = 0.2
    for best, exact in ((26, 20), (17, 11), (7, 1)):
        monkeypatch.setattr(trainer, "best_evaluation", lambda b=best: (best_iteration, b / 30))
        assert trainer.roll_back_if_dropped(exact / 30, trainer.iteration + 1) == {}, (best, exact)
    rolled = trainer.roll_back_if_dropped(0 / 30, trainer.iteration + 1)  # 7/30 -> 0/30: one episode more
    assert rolled == {"train/rolled_back_to": float(best_iteration)}


def test_rollback_needs_an_evaluation_to_roll_back_to():
    with pytest.raises(ValueError, match="rollback_drop needs keep_best and eval_every"):
        TrainConfig(eval_every=0, rollback_drop=0.2)
    with pytest.raises(ValueError, match="rollback_drop must be in"):
        TrainConfig(rollback_drop=1.5)
