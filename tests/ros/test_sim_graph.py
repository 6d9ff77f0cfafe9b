"""The sim graph over real DDS: policy node + trainer node + LIBERO bridge, started as `ript up sim`
starts them, with a tiny state-mode policy on real LIBERO (2 contexts, K=2, 24-step episodes).

1. One RIPT iteration with this test as the operator on /reward (successes alternate so every
   group is informative): K trials on 2 contexts, one LOOP update at ratio 1, new weights that the
   policy node loads and acts with; a reward for an unknown trial and a conflicting reward for a
   stored trial are rejected with a logged reason, a duplicate is idempotent.
2. The simulator's success check on /reward, and the trainer SIGKILLed mid-iteration: restarted on
   the same run folder it keeps every stored trial and completes the iteration.
3. Two robots (robots:=2: two policy nodes and two LIBERO bridges under /robot1 and /robot2) and one
   trainer; one robot stops answering mid-trial and its trial is re-issued to the other.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from ript.cli import up as up_cli
from ript.ros.graph import active_nodes

pytestmark = pytest.mark.slow
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture(scope="module")
def sim_assets(tmp_path_factory):
    from ript.policies.checkpoint import save_checkpoint
    from ript.policies.config import VLAConfig
    from ript.policies.libero_data import state_dim
    from ript.policies.vla import build_policy
    from ript.sim.contexts import save_contexts, training_contexts
    from ript.sim.env import LiberoEnvConfig

    folder = tmp_path_factory.mktemp("sim_graph")
    torch.manual_seed(0)
    config = VLAConfig(
        input_mode="state",
        state_dim=state_dim(LiberoEnvConfig().object_state_dim),
        use_language=False,
        hidden_dim=32,
        num_layers=1,
        num_heads=2,
        chunk_size=4,
        execute_steps=4,
    )
    save_checkpoint(folder / "tiny.ckpt", build_policy(config))
    save_contexts(folder / "contexts.npz", training_contexts("libero_spatial", [0, 1], per_task=1, seed=0))
    return folder


class SimGraph:
    """The nodes of `ript up sim`, each a subprocess logging to one file."""

    def __init__(self, assets: Path, run_dir: Path, **settings: str):
        sets = [
            f"checkpoint={assets / 'tiny.ckpt'}",
            f"contexts_file={assets / 'contexts.npz'}",
            f"run_dir={run_dir}",
            "max_steps=24",
            "group_size=2",
            "batch_size=4",
            "ppo_epochs=1",
            "trial_timeout_s=30.0",
            "panel_port=0",
            # an uncalibrated random policy: one LOOP step leaves any trust region; the graph is under test here
            "target_kl=0",
        ] + [f"{k}={v}" for k, v in settings.items()]
        self.arguments = up_cli.launch_arguments("sim", sets)
        specs = active_nodes("sim", self.arguments)
        self.names = [spec.full_name for spec in specs]
        self.log_path = run_dir.parent / f"{run_dir.name}.log"
        self.log = self.log_path.open("w")
        self.restarts: list[str] = []
        # ript up's own supervisor: a node that exits is restarted as `ript up` restarts it
        self.supervisor = up_cli.Supervisor(
            specs,
            up_cli.plan("sim", self.arguments),
            log=self.restarts.append,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def procs(self) -> dict[str, subprocess.Popen]:
        return dict(zip(self.names, self.supervisor.processes))

    def kill(self, name: str) -> None:
        os.kill(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait()

    def signal(self, name: str, signum: int) -> None:
        os.kill(self.procs[name].pid, signum)

    def alive(self) -> bool:
        """The graph runs: every exited node is being restarted (ript up's policy), none gave up."""
        return self.supervisor.poll() is None

    def stop(self) -> str:
        up_cli.stop(self.supervisor.processes)
        self.log.close()
        return self.log_path.read_text() + "".join(f"ript up: {line}\n" for line in self.restarts)


def test_one_iteration_with_operator_rewards(ros, sim_assets, tmp_path, graphs):
    from ript_interfaces.msg import ActionChunk, ActionCommand, Reward, TrialStart, WeightsUpdate

    run_dir = tmp_path / "run"
    graph = SimGraph(sim_assets, run_dir, sim_reward="false", iterations="2", learning_rate="0.05")
    graphs.append(graph)
    starts: list[TrialStart] = []
    chunks: dict[str, int] = {}
    commands: list[ActionCommand] = []
    weights: list[WeightsUpdate] = []
    node = ros.node
    node.create_subscription(TrialStart, "/ript/trial_start", starts.append, RELIABLE)
    node.create_subscription(
        ActionChunk,
        "/policy/action_chunk",
        lambda m: chunks.__setitem__(m.trial_id, chunks.get(m.trial_id, 0) + 1),
        RELIABLE,
    )
    node.create_subscription(ActionCommand, "/action", commands.append, RELIABLE)
    node.create_subscription(WeightsUpdate, "/ript/weights", weights.append, LATCHED)
    reward_pub = node.create_publisher(Reward, "/reward", RELIABLE)

    def reward(trial_id: str, success: bool) -> None:
        reward_pub.publish(
            Reward(
                trial_id=trial_id, success=success, reward=float(success), source=Reward.SOURCE_OPERATOR, confidence=1.0
            )
        )

    judged: dict[str, bool] = {}
    stray_sent = conflict_sent = False

    def operate() -> bool:
        nonlocal stray_sent, conflict_sent
        assert graph.alive(), graph.stop()[-3000:]
        if starts and not stray_sent:
            reward("no-such-trial", True)
            stray_sent = True
        for start in starts:
            if start.trial_id not in judged and chunks.get(start.trial_id, 0) >= 2:
                judged[start.trial_id] = start.trial_index == 0  # k0 succeeds, k1 fails: informative
                reward(start.trial_id, judged[start.trial_id])
                reward(start.trial_id, judged[start.trial_id])  # a duplicate: must be idempotent
        # the first trial *judged* (starts[0] may have been aborted and retried on a loaded machine)
        first = next(iter(judged), None)
        if not conflict_sent and first and len(judged) >= 2:
            reward(first, not judged[first])  # the first trial is stored by now: a conflicting late reward
            conflict_sent = True
        return any(c.weights_version == 1 for c in commands)

    assert ros.spin_until(operate, 150.0), f"no action with weights v1; log:\n{graph.stop()[-4000:]}"
    log = graph.stop()

    first_iteration = [s for s in starts if s.iteration == 1]
    assert len({s.context_id for s in first_iteration}) == 2, "K trials on 2 contexts"
    assert {s.weights_version for s in first_iteration} == {0}
    assert any(s.iteration == 2 and s.weights_version == 1 for s in starts)
    assert [w.version for w in weights][-1] >= 1
    stored = sorted((run_dir / "trials" / "iter_000001").glob("*.trial"))
    assert len(stored) == 4, [p.name for p in stored]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["iteration"] == 1)
    assert row["sampler/trials"] == 4 and row["sampler/groups_accepted"] == 2
    # Trajectories recorded by the policy node re-score under the same distribution: ratio 1.
    assert row["stats/ratio_mean"] == pytest.approx(1.0, abs=1e-4)
    from ript.policies.checkpoint import read_checkpoint

    before = read_checkpoint(sim_assets / "tiny.ckpt")["state_dict"]
    after = read_checkpoint(run_dir / "weights" / "policy_v000001.ckpt")["state_dict"]
    assert any(not torch.equal(before[k], after[k]) for k in before), "the LOOP update changed no weight"
    assert "loaded weights v1" in log
    assert "reward for 'no-such-trial' from operator rejected: reward for unknown trial" in log
    assert "ignored: duplicate reward" in log
    assert (
        f"rejected: reward 0 for finished trial {first_iteration[0].trial_id}" in log
        or f"rejected: reward 1 for finished trial {first_iteration[0].trial_id}" in log
    )


def test_trainer_killed_mid_iteration_loses_no_stored_trial(ros, sim_assets, tmp_path, graphs):
    run_dir = tmp_path / "run"
    trials_dir = run_dir / "trials" / "iter_000001"
    # rendered cameras, which this state policy does not read: its trials keep small frames for replay
    graph = SimGraph(sim_assets, run_dir, sim_reward="true", dynamic="false", iterations="1", render="true")
    graphs.append(graph)

    def stored() -> set[str]:
        return {p.name for p in trials_dir.glob("*.trial")}

    deadline = time.monotonic() + 120
    while len(stored()) < 2:
        assert graph.alive(), graph.stop()[-3000:]
        assert time.monotonic() < deadline, f"no 2 stored trials; log:\n{graph.stop()[-4000:]}"
        time.sleep(0.05)
    graph.kill("trainer_node")  # ript up restarts it on the same run folder
    before_kill = stored()
    assert len(before_kill) < 4, "the iteration finished before the kill; the test proves nothing"

    checkpoint = run_dir / "checkpoints" / "iter_000001.ckpt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists():
        assert graph.alive(), graph.stop()[-3000:]
        assert time.monotonic() < deadline, f"iteration not completed after restart; log:\n{graph.stop()[-4000:]}"
        time.sleep(0.1)
    log = graph.stop()
    after = stored()
    assert before_kill <= after, f"lost {before_kill - after}"
    assert len(after) == 4
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1] and rows[0]["sampler/trials"] == 4
    assert f"replayed {len(before_kill)} stored trials of iteration 1" in log
    from ript.core.trial_store import TrialStore

    store = TrialStore(run_dir / "trials")
    frames = [store.read(t).trajectory.obs.get("observation.images.agentview") for t in store.trial_ids()]
    with_frames = [f for f in frames if f is not None]
    # every trial, the node's very first included (it may begin before the first frame arrives)
    assert len(with_frames) == 4 and all(f.shape[1:] == (64, 64, 3) for f in with_frames)
    assert all(f.flatten(1).float().std(dim=1).min() > 0 for f in with_frames), "a frame of a query is blank"


def test_nodes_killed_mid_trial_come_back_and_their_trial_is_aborted_at_once(ros, sim_assets, tmp_path, graphs):
    """The policy node, then the LIBERO bridge, SIGKILLed in the middle of a trial: ript up restarts
    each; the restarted node hears of the running trial (TrialStart is latched) and has it aborted
    at once, far sooner than trial_timeout_s; the iteration completes with every trial stored."""
    from ript_interfaces.msg import ActionCommand
    from std_msgs.msg import String

    run_dir = tmp_path / "run"
    timeout_s = 300.0
    graph = SimGraph(
        sim_assets,
        run_dir,
        sim_reward="true",
        dynamic="false",
        iterations="1",
        max_steps="300",
        trial_timeout_s=str(timeout_s),
    )
    graphs.append(graph)
    steps: dict[str, int] = {}
    aborted: list[str] = []
    ros.node.create_subscription(ActionCommand, "/action", lambda m: steps.__setitem__(m.trial_id, m.step), RELIABLE)
    ros.node.create_subscription(String, "/ript/trial_aborted", lambda m: aborted.append(m.data), RELIABLE)

    def kill_mid_trial(name: str) -> str:
        def acting() -> str | None:
            assert graph.alive(), graph.stop()[-3000:]
            return next((t for t, step in steps.items() if step >= 5 and t not in aborted), None)

        assert ros.spin_until(lambda: acting() is not None, 120.0), f"no trial acting; log:\n{graph.stop()[-4000:]}"
        trial_id = acting()
        graph.kill(name)
        killed_at = time.monotonic()
        assert ros.spin_until(lambda: graph.alive() and trial_id in aborted, 90.0), (
            f"{trial_id} not aborted after {name} was killed; log:\n{graph.stop()[-4000:]}"
        )
        recovered_s = time.monotonic() - killed_at
        assert recovered_s < timeout_s / 5, (
            f"{trial_id} waited {recovered_s:.0f} s: the trainer's timeout, not the restart"
        )
        return trial_id

    first = kill_mid_trial("policy_node")
    second = kill_mid_trial("libero_bridge")
    checkpoint = run_dir / "checkpoints" / "iter_000001.ckpt"
    assert ros.spin_until(lambda: graph.alive() and checkpoint.exists(), 240.0), (
        f"iteration not completed after the restarts; log:\n{graph.stop()[-4000:]}"
    )
    log = graph.stop()
    assert "restarted policy_node" in log and "restarted libero_bridge" in log, log[-3000:]
    assert "policy_node started" in log and f"after trial {first} began" in log, log[-3000:]
    assert "libero_bridge started" in log and f"after trial {second} began" in log, log[-3000:]
    assert len(list((run_dir / "trials" / "iter_000001").glob("*.trial"))) == 4


def test_two_robots_one_trainer(ros, sim_assets, tmp_path, graphs):
    """robots:=2 with the simulator's rewards: the trainer hands the open group's trials to whichever
    robot is free, so both robots run trials, each group on one context. robot2's bridge is stopped
    (SIGSTOP) in the middle of its second trial: that trial times out, is re-issued to robot1 under
    the same k and never counted twice; every trial is stored once, with the robot that ran it, and
    the iteration completes. Records from robot2 for robot1's trial, and from outside every robot's
    namespace, are refused with their reasons."""
    from ript_interfaces.msg import ActionCommand, TrialRecord, TrialStart
    from std_msgs.msg import String

    from ript.core.trial_store import TrialStore

    run_dir = tmp_path / "run"
    timeout_s = 30.0  # a bridge's first trial builds its LIBERO env: two at once on a busy machine take a while
    graph = SimGraph(
        sim_assets,
        run_dir,
        robots="2",
        sim_reward="true",
        dynamic="false",
        iterations="1",
        max_steps="40",
        trial_timeout_s=str(timeout_s),
    )
    graphs.append(graph)
    robots = ("robot1", "robot2")
    # trial id -> the robot whose actions it ran on (the trainer announces a trial before this test
    # may have discovered its publisher: starts are a sample, every action of a trial is not)
    acted_on: dict[str, str] = {}
    starts: list[TrialStart] = []
    aborted: list[str] = []
    stalled: list[str] = []

    for robot in robots:
        ros.node.create_subscription(TrialStart, f"/{robot}/ript/trial_start", starts.append, LATCHED)
    ros.node.create_subscription(String, "/ript/trial_aborted", lambda m: aborted.append(m.data), RELIABLE)
    forged = {
        topic: ros.node.create_publisher(TrialRecord, topic, RELIABLE)
        for topic in ("/robot2/policy/trial_record", "/policy/trial_record")
    }
    forged_for: list[str] = []

    def on_action(robot: str, msg: ActionCommand) -> None:
        acted_on.setdefault(msg.trial_id, robot)
        robot2_trials = [t for t, r in acted_on.items() if r == "robot2"]
        if robot == "robot2" and not stalled and msg.step >= 3 and robot2_trials[1:2] == [msg.trial_id]:
            graph.signal("robot2/libero_bridge", signal.SIGSTOP)  # robot2 stops answering mid-trial
            stalled.append(msg.trial_id)

    for robot in robots:
        ros.node.create_subscription(ActionCommand, f"/{robot}/action", lambda m, r=robot: on_action(r, m), RELIABLE)
    checkpoint = run_dir / "checkpoints" / "iter_000001.ckpt"

    resumed: list[str] = []

    def progress() -> bool:
        assert graph.alive(), graph.stop()[-3000:]
        robot1_trial = next((t for t, r in acted_on.items() if r == "robot1"), None)
        if robot1_trial and not forged_for:  # robot2, and a node in no robot's namespace, claim robot1's trial
            for publisher in forged.values():
                publisher.publish(TrialRecord(trial_id=robot1_trial, path="/nowhere.traj", sha256="0" * 64))
            forged_for.append(robot1_trial)
        if stalled and stalled[0] in aborted and not resumed:
            graph.signal("robot2/libero_bridge", signal.SIGCONT)  # back, after its trial went elsewhere
            resumed.append(stalled[0])
        return checkpoint.exists()

    assert ros.spin_until(progress, 240.0), f"iteration not completed; log:\n{graph.stop()[-5000:]}"
    log = graph.stop()

    assert stalled, f"robot2 never ran a second trial to stop; trials {acted_on}\n{log[-3000:]}"
    (stalled_id,) = stalled
    assert stalled_id in aborted and f"no reward and trajectory within {timeout_s:g} s from robot2" in log
    assert f"trajectory for {forged_for[0]} from robot2: the trial was issued to robot1" in log, log[-3000:]
    assert "record on /policy/trial_record is from no robot of this trainer" in log, log[-3000:]
    stored = TrialStore(run_dir / "trials").load(1)
    ids = [t.trial_id for t in stored]
    assert len(stored) == 4 and len(set(ids)) == 4, ids
    assert stalled_id not in ids, "the trial of the robot that stopped answering was counted"
    assert {t.robot for t in stored} == set(robots), "trials ran on both robots"
    for trial in stored:
        assert trial.robot == acted_on[trial.trial_id], f"{trial.trial_id} stored with the wrong robot"
    # its k, re-issued to robot1 in the same group
    stalled_slot = re.search(r"-g(\d+)-c\d+-k(\d+)-", stalled_id).groups()
    retries = [t for t in stored if re.search(r"-g(\d+)-c\d+-k(\d+)-", t.trial_id).groups() == stalled_slot]
    assert [t.robot for t in retries] == ["robot1"], [t.trial_id for t in retries]
    # each group on one context, in what was announced and in what was stored
    announced: dict[str, set[str]] = {}
    for start in starts:
        announced.setdefault(re.search(r"-g(\d+)-", start.trial_id).group(1), set()).add(start.context_id)
    assert all(len(contexts) == 1 for contexts in announced.values()), announced
    assert all(len({t.context_id for t in stored if t.group_id == g}) == 1 for g in {t.group_id for t in stored})
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1] and rows[0]["sampler/trials"] == 4
