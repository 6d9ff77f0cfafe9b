"""ROS 2 trainer node: K trials per context, LOOP updates, new weights to the policy node.

A thin adapter around `InteractiveTrainer` (the same DynamicSampler, LOOP update and checkpoints
as `ript train`). It announces each trial (TrialStart), matches /reward and the policy node's
TrialRecord to it by trial_id, stores the trial (verified file) before acknowledging it on
/ript/status, and after each iteration publishes the new weights (WeightsUpdate, latched).
Restarted on the same run_dir it resumes: checkpoint + replay of the stored trials.

Trials start automatically (`auto_start`, the simulator) or when an operator calls
/ript/start_trial after resetting the scene (a real robot). /ript/abort_trial drops a trial.

    ros2 run ript_trainer trainer_node --ros-args -p checkpoint:=policy.ckpt -p run_dir:=runs/ros/run1 \
        -p contexts_file:=runs/contexts/libero_spatial_seed0.npz
"""

from __future__ import annotations

import logging
from pathlib import Path

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from ript_interfaces.msg import Reward, TrainerStatus, TrialRecord, TrialStart, WeightsUpdate
from ript_interfaces.srv import AbortTrial, StartTrial
from ript_trainer.interactive import ContextInfo, InteractiveTrainer, TrialTicket, Verdict
from ript_trainer.loop import LoopConfig
from ript_trainer.sampler import SamplerConfig
from ript_trainer.train import TrainConfig
from ript_policy.ros_main import spin_node

RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def load_contexts(path: str) -> list[ContextInfo]:
    """A LIBERO contexts .npz (`ript contexts`) or a YAML list of {context_id, instruction} (robot)."""
    if path.endswith(".npz"):
        from ript_sim.ros_contexts import load_context_infos

        return load_context_infos(path)
    import yaml

    return [ContextInfo(str(c["context_id"]), str(c["instruction"])) for c in yaml.safe_load(Path(path).read_text())]


class TrainerNode(Node):
    def __init__(self) -> None:
        super().__init__("trainer_node")
        # dynamic typing: `-p x:=30` must not be refused for a float default (YAML reads it as int)
        p = lambda name, default: self.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True))
        checkpoint = p("checkpoint", "").value
        run_dir = Path(p("run_dir", "runs/ros/run").value)
        contexts_file = p("contexts_file", "").value
        self.auto_start = bool(p("auto_start", True).value)
        self.wait_for_subscribers = int(p("wait_for_subscribers", 2).value)
        self.trial_timeout_s = float(p("trial_timeout_s", 120.0).value)
        self.reward_mode = str(p("reward_mode", "any").value)
        """'operator': only Reward(source=operator) counts; the simulator's check is a suggestion for
        the operator panel. 'any': every judge's reward counts."""
        if self.reward_mode not in ("any", "operator"):
            raise SystemExit(f"trainer_node: reward_mode must be 'any' or 'operator', got {self.reward_mode!r}")
        seed = int(p("seed", 0).value)
        config = TrainConfig(
            iterations=int(p("iterations", 10).value), learning_rate=float(p("learning_rate", 1e-5).value),
            eval_every=0, seed=seed,
            sampler=SamplerConfig(group_size=int(p("group_size", 8).value), batch_size=int(p("batch_size", 32).value),
                                  dynamic=bool(p("dynamic", True).value), seed=seed),
            loop=LoopConfig(ppo_epochs=int(p("ppo_epochs", 2).value), minibatch_size=int(p("minibatch_size", 64).value),
                            clip_low=float(p("clip_low", 0.2).value), clip_high=float(p("clip_high", 0.2).value)))
        if not checkpoint or not contexts_file:
            raise SystemExit("trainer_node: set 'checkpoint' (policy to train) and 'contexts_file'")
        from ript_policy.checkpoint import load_checkpoint, save_checkpoint

        policy, payload = load_checkpoint(checkpoint)

        def save_weights(path: Path) -> None:
            save_checkpoint(path, policy, stats=payload.get("stats"),
                            instruction_embeddings=payload.get("instruction_embeddings"),
                            metadata={**payload.get("metadata", {}), "ript_run": str(run_dir)})

        self.trainer = InteractiveTrainer(policy, load_contexts(contexts_file), config, run_dir, save_weights,
                                          checkpoint, extra_config={"ros": {"checkpoint": checkpoint,
                                                                            "contexts_file": contexts_file}})
        if self.trainer.resume():
            self.get_logger().info(f"resumed {run_dir} at iteration {self.trainer.iteration} with "
                                   f"{self.trainer.sampler.accepted_trials} trials of the next one stored")
        self.message = "starting"

        self.start_pub = self.create_publisher(TrialStart, "ript/trial_start", RELIABLE)
        self.weights_pub = self.create_publisher(WeightsUpdate, "ript/weights", LATCHED)
        self.status_pub = self.create_publisher(TrainerStatus, "ript/status", RELIABLE)
        self.aborted_pub = self.create_publisher(String, "ript/trial_aborted", RELIABLE)
        self.instruction_pub = self.create_publisher(String, "instruction", LATCHED)
        self.create_subscription(Reward, "reward", self._on_reward, RELIABLE)
        self.create_subscription(TrialRecord, "policy/trial_record", self._on_record, RELIABLE)
        self.create_service(StartTrial, "ript/start_trial", self._on_start_request)
        self.create_service(AbortTrial, "ript/abort_trial", self._on_abort_request)
        self.create_timer(0.05, self._tick)
        self.create_timer(1.0, self._publish_status)
        self._publish_weights()
        self.get_logger().info(f"trainer ready: {len(self.trainer.contexts)} contexts, K={config.sampler.group_size}, "
                               f"B={config.sampler.batch_size}, run {run_dir}")

    # ---- outgoing ------------------------------------------------------------------------------
    def _publish_weights(self) -> None:
        from ript_policy.safe_io import file_digest

        path = self.trainer.weights_path()
        self.published_version = self.trainer.weights_version
        self.weights_pub.publish(WeightsUpdate(version=self.trainer.weights_version, path=str(path.resolve()),
                                               sha256=file_digest(path), stamp=self.get_clock().now().to_msg()))

    def _start(self, ticket: TrialTicket) -> None:
        self.instruction_pub.publish(String(data=ticket.instruction))
        self.start_pub.publish(TrialStart(
            trial_id=ticket.trial_id, context_id=ticket.context_id, iteration=ticket.iteration,
            trial_index=ticket.trial_index, group_size=ticket.group_size, instruction=ticket.instruction,
            stochastic=True, weights_version=ticket.weights_version, stamp=self.get_clock().now().to_msg()))
        self.message = f"started {ticket.trial_id} on {ticket.context_id}"
        self.get_logger().info(self.message)
        self._publish_status()

    def _publish_status(self) -> None:
        t = self.trainer
        if t.done:
            state = TrainerStatus.STATE_IDLE
        elif t.pending is not None:
            state = TrainerStatus.STATE_COLLECTING
        else:
            state = TrainerStatus.STATE_WAITING_FOR_RESET
        self.status_pub.publish(TrainerStatus(state=state, message=self.message, stamp=self.get_clock().now().to_msg(),
                                              **t.status()))

    # ---- incoming ------------------------------------------------------------------------------
    def _verdict(self, what: str, verdict: Verdict) -> None:
        if not verdict.accepted:
            self.get_logger().warn(f"{what} rejected: {verdict.reason}")
        elif "duplicate" in verdict.reason:
            self.get_logger().info(f"{what} ignored: {verdict.reason}")
        self.message = verdict.reason
        if verdict.iteration_row is not None:
            row = verdict.iteration_row
            self.get_logger().info(
                f"iteration {row['iteration']} done: success {row.get('rollout/success_rate', 0):.2f}, "
                f"loss {row.get('loss/policy', float('nan')):.4f}, weights v{self.trainer.weights_version}")
            self._publish_weights()
        if verdict.trial_stored:
            self.get_logger().info(verdict.reason)
            self._publish_status()  # the acknowledgement: only ever after the trial is on disk
            if self.trainer.done:
                self.get_logger().info(f"training finished at iteration {self.trainer.iteration}"
                                       + (f" ({self.trainer.stopped_reason})" if self.trainer.stopped_reason else ""))

    def _on_reward(self, msg: Reward) -> None:
        if self.reward_mode == "operator" and msg.source != Reward.SOURCE_OPERATOR:
            self.get_logger().info(f"reward for {msg.trial_id!r} from {msg.source or 'unknown'} ignored: "
                                   "reward_mode is 'operator'")
            return
        self._verdict(f"reward for {msg.trial_id!r} from {msg.source or 'unknown'}",
                      self.trainer.on_reward(msg.trial_id, 1.0 if msg.success else 0.0, msg.source))

    def _on_record(self, msg: TrialRecord) -> None:
        from ript_policy.safe_io import CorruptFileError, file_digest, load_verified
        from ript_trainer.trial_store import trajectory_from_dict

        if not msg.path:
            self._abort(msg.trial_id, f"policy node sent no trajectory: {msg.message}")
            return
        try:
            if file_digest(msg.path) != msg.sha256:
                raise CorruptFileError(f"{msg.path}: digest differs from the announced one")
            payload = load_verified(msg.path)
            if payload.get("trial_id") != msg.trial_id:
                raise CorruptFileError(f"{msg.path} holds trial {payload.get('trial_id')!r}")
            trajectory = trajectory_from_dict(payload)
        except (OSError, CorruptFileError, KeyError, ValueError) as exc:
            self._abort(msg.trial_id, f"unreadable trajectory: {exc}")
            return
        verdict = self.trainer.on_trajectory(msg.trial_id, trajectory)
        self._verdict(f"trajectory for {msg.trial_id!r}", verdict)
        if verdict.trial_stored:
            Path(msg.path).unlink(missing_ok=True)  # the trial store holds its own verified copy

    def _abort(self, trial_id: str, reason: str) -> Verdict:
        verdict = self.trainer.abort(trial_id, reason)
        if verdict.accepted:
            self.aborted_pub.publish(String(data=trial_id))
        self._verdict(f"abort of {trial_id!r}", verdict)
        return verdict

    def _on_start_request(self, request: StartTrial.Request, response: StartTrial.Response):
        if request.context_id:
            response.accepted, response.message = False, "choosing a context is the sampler's job; send it empty"
            return response
        ticket = self.trainer.next_trial()
        if ticket is None:
            running = self.trainer.pending
            response.accepted = False
            response.message = "training is done" if self.trainer.done else \
                f"trial {running.ticket.trial_id} is still running" if running else "no trial available"
            return response
        self._start(ticket)
        response.accepted, response.trial_id, response.message = True, ticket.trial_id, "started"
        return response

    def _on_abort_request(self, request: AbortTrial.Request, response: AbortTrial.Response):
        verdict = self._abort(request.trial_id, request.reason or "operator")
        response.accepted, response.message = verdict.accepted, verdict.reason
        return response

    def _tick(self) -> None:
        t = self.trainer
        if t.pending is not None and self.trial_timeout_s and t.pending_age_s > self.trial_timeout_s:
            self._abort(t.pending.ticket.trial_id, f"no reward and trajectory within {self.trial_timeout_s:g} s")
        if not self.auto_start or t.pending is not None or t.done:
            return
        if self.start_pub.get_subscription_count() < self.wait_for_subscribers:
            self.message = f"waiting for {self.wait_for_subscribers} subscribers of /ript/trial_start"
            return
        ticket = t.next_trial()
        if t.weights_version != self.published_version:  # the sampler closed an iteration by itself
            self._publish_weights()
        if ticket is not None:
            self._start(ticket)


def main(args=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s: %(message)s")
    spin_node(TrainerNode, args, close=lambda node: node.trainer.close())


if __name__ == "__main__":
    main()
