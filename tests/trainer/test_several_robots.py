"""One trainer, several robots, without ROS: a group's K trials run in parallel on different robots
on the group's one context, a trajectory from a robot the trial was not issued to is refused, a
trial that timed out on one robot is re-issued (same k) and counted once, every stored trial names
its robot, a restart replays the parallel trials to the same weights, and trial files written
before robots were recorded still load."""

from __future__ import annotations

from dataclasses import asdict

import torch
from test_interactive import make_trainer, trajectory

from ript.core.robot_schedule import RobotSchedule
from ript.core.safe_io import save_verified
from ript.core.trial_store import StoredTrial, TrialStore, trajectory_to_dict


def complete(trainer, ticket, reward, seed, robot):
    assert trainer.on_reward(ticket.trial_id, reward, "simulator").accepted
    verdict = trainer.on_trajectory(ticket.trial_id, trajectory(trainer.policy, seed), robot)
    assert verdict.trial_stored, verdict.reason
    return verdict


def test_a_groups_trials_run_in_parallel_on_two_robots_each_stored_once_with_its_robot(tmp_path):
    trainer = make_trainer(tmp_path)  # K = 2, B = 4: two groups
    first = trainer.next_trial("robot1")
    second = trainer.next_trial("robot2")
    assert trainer.next_trial("robot1") is None, "a robot runs one trial at a time"
    assert trainer.next_trial("robot3") is None, "every trial of the open group is issued"
    assert (first.robot, second.robot) == ("robot1", "robot2")
    assert (first.group_id, first.context_id) == (second.group_id, second.context_id), "one group, one context"
    assert {first.trial_index, second.trial_index} == {0, 1}
    assert set(trainer.running) == {first.trial_id, second.trial_id}

    # robot2 sends a record for robot1's trial: refused before any file is read, robot1's trial runs on
    wrong = trainer.trajectory_wanted(first.trial_id, "robot2")
    assert not wrong.accepted and "issued to robot1" in wrong.reason
    assert not trainer.on_trajectory(first.trial_id, trajectory(trainer.policy, 9), "robot2").accepted
    assert first.trial_id in trainer.running

    # robot2 stops answering: its trial is aborted (the node's timeout) and its k goes to robot1
    complete(trainer, first, 1.0, 0, "robot1")
    # and again once robot1's trial is stored: still the wrong robot, not a harmless duplicate
    late_wrong = trainer.trajectory_wanted(first.trial_id, "robot2")
    assert not late_wrong.accepted and "issued to robot1" in late_wrong.reason
    assert "already stored" in trainer.trajectory_wanted(first.trial_id, "robot1").reason
    assert trainer.abort(second.trial_id, "no reward and trajectory within 30 s from robot2").accepted
    retry = trainer.next_trial("robot1")
    assert (retry.group_id, retry.trial_index, retry.robot) == (second.group_id, second.trial_index, "robot1")
    late = trainer.on_reward(second.trial_id, 0.0)
    assert not late.accepted and "aborted" in late.reason, "the dead robot's late reward never counts"
    complete(trainer, retry, 0.0, 1, "robot1")

    # the next group opens once the first is closed; its trials spread over both robots again
    third, fourth = trainer.next_trial("robot2"), trainer.next_trial("robot1")
    assert third.group_id == fourth.group_id != first.group_id and third.context_id == fourth.context_id
    complete(trainer, fourth, 1.0, 2, "robot1")  # completed out of issue order: fine
    verdict = complete(trainer, third, 0.0, 3, "robot2")
    assert verdict.iteration_row is not None and trainer.iteration == 1

    stored = trainer.store.load(1)
    assert [(t.trial_id, t.robot) for t in stored] == [
        (first.trial_id, "robot1"),
        (retry.trial_id, "robot1"),
        (fourth.trial_id, "robot1"),
        (third.trial_id, "robot2"),
    ]
    assert second.trial_id not in {t.trial_id for t in stored}


def test_a_restart_replays_parallel_trials_to_the_same_weights(tmp_path):
    def run(folder, stop_after=None):
        trainer = make_trainer(folder)
        done = 0
        for group in range(2):
            a, b = trainer.next_trial("robot1"), trainer.next_trial("robot2")
            for ticket, reward, seed in ((b, 0.0, 2 * group), (a, 1.0, 2 * group + 1)):
                if done == stop_after:
                    return trainer
                complete(trainer, ticket, reward, seed, ticket.robot)
                done += 1
        return trainer

    straight = run(tmp_path / "straight")
    run(tmp_path / "killed", stop_after=3)
    restarted = make_trainer(tmp_path / "killed")
    assert restarted.resume() and restarted.replayed_trials == 3
    last = restarted.next_trial("robot1")
    assert last.trial_index == 1 and restarted.next_trial("robot2") is None  # k 0 of the open group is stored
    verdict = complete(restarted, last, 1.0, 3, "robot1")
    assert verdict.iteration_row is not None
    for key, value in straight.policy.state_dict().items():
        torch.testing.assert_close(restarted.policy.state_dict()[key], value)


def test_a_trial_file_from_before_robots_were_recorded_loads_without_one(tmp_path):
    store = TrialStore(tmp_path)
    policy = make_trainer(tmp_path / "run").policy
    trial = StoredTrial("it0001-g000-c001-k0-abcdef", 1, 0, 1, "ctx1", 1.0, "operator", 0, trajectory(policy, 0))
    payload = {**asdict(trial), "trajectory": trajectory_to_dict(trial.trajectory)}
    del payload["robot"]  # the schema of files written before this field existed
    path = store.iteration_dir(1) / f"000000-{trial.trial_id}.trial"
    save_verified(payload, path)
    (loaded,) = store.load(1)
    assert loaded.trial_id == trial.trial_id and loaded.robot == ""
    assert store.read(trial.trial_id).robot == ""


def test_schedule_prefers_the_robot_idle_longest_and_skips_held_ones():
    now = [0.0]
    schedule = RobotSchedule(["robot1", "robot2", "robot3"], clock=lambda: now[0])
    schedule.started("robot1")
    now[0] = 1.0
    schedule.started("robot2")
    assert schedule.free_robots(busy=set()) == ["robot3", "robot1", "robot2"]
    schedule.hold("robot3", 5.0, "its last trial timed out")
    assert schedule.held("robot3") == "its last trial timed out"
    assert schedule.free_robots(busy={"robot1"}) == ["robot2"]
    assert schedule.free_robots(busy=set(), ready=lambda robot: robot != "robot1") == ["robot2"]
    now[0] = 6.5
    assert schedule.held("robot3") == "" and schedule.free_robots(busy=set())[0] == "robot3"
