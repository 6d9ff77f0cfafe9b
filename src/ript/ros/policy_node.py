"""ROS 2 policy node: camera images + robot state + the trial's instruction -> bounded actions.

A thin adapter around `TrialRunner` (the acting/recording core) and THE featurizer
`ript.policies.sft.libero_policy_inputs`. Per trial (TrialStart from the trainer) it samples
(training) or takes the mode (evaluation), publishes one ActionCommand per control step and one
ActionChunk per policy query (actions, scored actions/tokens, log-probs), and when the trial's
reward arrives on /reward it writes the trajectory (atomic, SHA-256) and announces it with a
TrialRecord. New weights (WeightsUpdate) are loaded between trials, never inside one. It sends
nothing on stale inputs (older than stale_after_s) or when inputs of another trial arrive.

    ros2 run ript_ros policy_node --ros-args -p checkpoint:=runs/sft/policy.ckpt
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from ript_interfaces.msg import ActionChunk, ActionCommand, Reward, RobotState, TrialRecord, TrialStart, WeightsUpdate
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ript.core.constants import OBS_IMAGE_PREFIX
from ript.core.trial_runner import TrialRunner, UnsafeAction, save_trajectory
from ript.policies import libero_data as keys
from ript.ros.ros_images import image_to_rgb
from ript.ros.ros_main import spin_node
from ript.ros.trial_start import TrialStartListener

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Robot state and images: sensor data, latest wins (a dropped frame is replaced by the next one).
SENSOR = qos_profile_sensor_data
CAMERAS = {"agentview": keys.AGENTVIEW, "wrist": keys.WRIST}
"""Camera topic suffix -> LIBERO observation key."""


def stamp_s(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__("policy_node")
        # dynamic typing: `-p x:=30` must not be refused for a float default (YAML reads it as int)
        p = lambda name, default: self.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True))
        self.checkpoint = p("checkpoint", "").value
        self.backend = p("backend", "torch").value
        self.device = p("device", "").value or None
        threads = int(p("threads", 1).value)
        self.threads = threads or None
        """CPU threads per query (0: the library's default). One by default: a query is one
        observation, and more threads spin beside the env or driver processes that share the cores
        (in the sim rollouts one thread made env steps 1.53x faster, docs/bench/rollout_threads.md)."""
        self.control_rate_hz = float(p("control_rate_hz", 0.0).value)
        self.stale_after_s = float(p("stale_after_s", 0.5).value)
        self.sync_tolerance_s = float(p("sync_tolerance_s", 0.02).value)
        self.action_bound = float(p("action_bound", 1.0).value)
        self.record_dir = Path(p("record_dir", "runs/ros/run/incoming").value)  # the trainer's default run_dir
        self.weights_dir = Path(p("weights_dir", "").value or self.record_dir.parent / "weights")
        """The one folder WeightsUpdate files are loaded from (the trainer's run_dir/weights); a
        message naming anything else, but this node's own checkpoint, is refused unread."""
        self.seed = int(p("seed", 0).value)
        self.replay_frame_size = int(p("replay_frame_size", 64).value)
        """A policy that reads no camera still records the cameras' latest frames at this size with
        each query, so its trials can be replayed in the panel (0: record none)."""
        if not self.checkpoint:
            raise SystemExit("policy_node: set the 'checkpoint' parameter to a policy checkpoint")
        if self.control_rate_hz < 0 or self.stale_after_s <= 0 or self.action_bound <= 0 or threads < 0:
            raise SystemExit(
                "policy_node: need control_rate_hz >= 0, stale_after_s > 0, action_bound > 0, threads >= 0"
            )

        self.weights_version = 0
        self.pending_weights: WeightsUpdate | None = None
        self._load(self.checkpoint, version=0)
        self.trial: TrialStart | None = None
        self.state: RobotState | None = None
        self.images: dict[str, Image] = {}
        self.cameras_seen = False
        """Whether any camera has published (a graph without rendering records no replay frames)."""
        self.replay_in_trial: bool | None = None
        """Whether this trial's queries record replay frames (decided at its first query)."""
        self.last_step = -1

        self.action_pub = self.create_publisher(ActionCommand, "action", RELIABLE)
        self.chunk_pub = self.create_publisher(ActionChunk, "policy/action_chunk", RELIABLE)
        self.record_pub = self.create_publisher(TrialRecord, "policy/trial_record", RELIABLE)
        self.create_subscription(RobotState, "robot/state", self._on_state, SENSOR)
        for camera in self.cameras or (list(CAMERAS) if self.replay_frame_size > 0 else []):
            self.create_subscription(
                Image, f"camera/{camera}/image_raw", lambda msg, c=camera: self._on_image(c, msg), SENSOR
            )
        TrialStartListener(self, self._on_trial_start)  # latched: a restart mid-trial aborts it at once
        self.create_subscription(WeightsUpdate, "ript/weights", self._on_weights, LATCHED)
        self.create_subscription(Reward, "reward", self._on_reward, RELIABLE)
        self.create_subscription(String, "ript/trial_aborted", self._on_aborted, RELIABLE)
        if self.control_rate_hz > 0:
            self.create_timer(1.0 / self.control_rate_hz, self._tick)
        self.get_logger().info(
            f"policy {self.checkpoint} ({self.backend}) ready; cameras {self.cameras or 'none'}, "
            f"control {'on each observation' if not self.control_rate_hz else f'{self.control_rate_hz} Hz'}"
        )

    # ---- weights -----------------------------------------------------------------------------
    def _load(self, path: str, version: int) -> None:
        from ript.policies.backends import load_policy
        from ript.policies.checkpoint import read_checkpoint

        policy = load_policy(path, backend=self.backend, device=self.device, threads=self.threads)
        self.policy = policy
        self.config = policy.config
        embeddings = getattr(policy, "instruction_embeddings", None)
        if embeddings is None:
            embeddings = read_checkpoint(path).get("instruction_embeddings", {})
        self.embeddings = embeddings
        self.cameras = [] if self.config.input_mode != "image" else list(CAMERAS)
        self.runner = TrialRunner(policy, self.config.execute_steps, self.action_bound)
        self.weights_version = version

    def _on_weights(self, msg: WeightsUpdate) -> None:
        if msg.version == self.weights_version:
            return
        if self.trial is not None:
            self.pending_weights = msg  # never swap inside a trial: the PPO ratio needs the sampler
            return
        self._apply_weights(msg)

    def _apply_weights(self, msg: WeightsUpdate) -> bool:
        from ript.core.safe_io import confined_file, file_digest

        try:
            own = Path(self.checkpoint).resolve()
            path = own if Path(msg.path).resolve() == own else confined_file(msg.path, self.weights_dir)
            digest = file_digest(path)
            if digest != msg.sha256:
                raise ValueError(f"sha256 {digest[:12]}… does not match the announced {msg.sha256[:12] or '(none)'}…")
            self._load(str(path), msg.version)
        except Exception as exc:  # a bad file must not take the node down; the old weights stay
            self.get_logger().error(f"weights v{msg.version} not loaded from {msg.path}: {exc}")
            return False
        self.pending_weights = None
        self.get_logger().info(f"loaded weights v{msg.version} from {msg.path}")
        return True

    # ---- trials ------------------------------------------------------------------------------
    def _on_trial_start(self, msg: TrialStart) -> None:
        if self.trial is not None and self.trial.trial_id != msg.trial_id:
            self.get_logger().warn(f"trial {self.trial.trial_id} superseded by {msg.trial_id}; its record is dropped")
        self.trial = None
        pending = self.pending_weights
        if (
            msg.weights_version != self.weights_version
            and pending is not None
            and pending.version == msg.weights_version
        ):
            self._apply_weights(pending)
        if msg.weights_version != self.weights_version:
            why = f"refused: trial wants weights v{msg.weights_version}, this node has v{self.weights_version}"
            self.get_logger().error(f"{msg.trial_id}: {why}")
            self._publish_record(msg.trial_id, msg.stochastic, message=why)
            return
        self.trial = msg
        self.state, self.images, self.last_step = None, {}, -1
        self.replay_in_trial = None
        self.instruction_embedding = None
        if self.config.use_language:
            if msg.instruction not in self.embeddings:
                from ript.policies.encoders import instruction_encoder

                self.embeddings[msg.instruction] = instruction_encoder(self.policy, self.embeddings)(msg.instruction)
            self.instruction_embedding = np.asarray(self.embeddings[msg.instruction], dtype=np.float32)
        self.runner.begin(msg.trial_id, msg.stochastic, seed=zlib.crc32(msg.trial_id.encode()) ^ self.seed)

    def _on_reward(self, msg: Reward) -> None:
        if self.trial is None or msg.trial_id != self.trial.trial_id:
            return  # the trainer judges stray rewards; the policy only needs to know its trial ended
        trial, self.trial = self.trial, None
        trajectory = self.runner.trajectory()
        if trajectory is None:
            self._publish_record(trial.trial_id, trial.stochastic, message="no trajectory (deterministic or no step)")
        else:
            path = self.record_dir / f"{trial.trial_id}.traj"
            digest = save_trajectory(path, trajectory, trial.trial_id, self.weights_version)
            self._publish_record(
                trial.trial_id,
                trial.stochastic,
                str(path.resolve()),
                digest,
                trajectory["num_steps"],
                len(self.runner.queries),
                "recorded",
            )
        if self.pending_weights is not None:
            self._apply_weights(self.pending_weights)

    def _on_aborted(self, msg: String) -> None:
        if self.trial is not None and msg.data == self.trial.trial_id:
            self.get_logger().warn(f"trial {msg.data} aborted; stopping")
            self.trial = None

    def _publish_record(
        self,
        trial_id: str,
        stochastic: bool,
        path: str = "",
        sha256: str = "",
        num_steps: int = 0,
        num_queries: int = 0,
        message: str = "",
    ) -> None:
        self.record_pub.publish(
            TrialRecord(
                trial_id=trial_id,
                path=path,
                sha256=sha256,
                num_steps=num_steps,
                num_queries=num_queries,
                weights_version=self.weights_version,
                stochastic=stochastic,
                message=message,
                stamp=self.get_clock().now().to_msg(),
            )
        )

    # ---- control -----------------------------------------------------------------------------
    def _on_state(self, msg: RobotState) -> None:
        if msg.trial_id and (self.trial is None or msg.trial_id != self.trial.trial_id):
            return  # an observation of another trial (e.g. late after a reset)
        self.state = msg
        if not self.control_rate_hz:
            self._tick()

    def _on_image(self, camera: str, msg: Image) -> None:
        self.images[camera] = msg
        self.cameras_seen = True
        if not self.control_rate_hz:
            self._tick()

    def _observation(self) -> tuple[dict, float] | None:
        """LIBERO-keyed observation of one instant, or None until state and images agree in time."""
        state = self.state
        if state is None:
            return None
        stamp = stamp_s(state.stamp)
        obs = {
            keys.EE_POS: np.asarray(state.ee_pos),
            keys.EE_ORI: np.asarray(state.ee_ori),
            keys.GRIPPER_STATES: np.asarray(state.gripper_states),
            keys.JOINT_STATES: np.asarray(state.joint_states),
        }
        if len(state.object_state):
            obs[keys.OBJECT_STATE] = np.asarray(state.object_state)
        for camera in self.cameras:
            pixels = self._synced_pixels(camera, stamp)
            if pixels is None:
                return None
            # Topics carry upright images; the featurizer expects LIBERO's stored (flipped) rows.
            obs[CAMERAS[camera]] = keys.upright(pixels)
        return obs, stamp

    def _synced_pixels(self, camera: str, stamp: float) -> np.ndarray | None:
        """The camera's upright RGB frame of the instant `stamp`; None until its frame agrees with the
        state in time, or when its encoding cannot be read (no action rather than a wrong one)."""
        image = self.images.get(camera)
        if image is None or abs(stamp_s(image.header.stamp) - stamp) > self.sync_tolerance_s:
            return None
        return image_to_rgb(image)

    def _cameras_publish(self) -> bool:
        """Whether any camera publishes, seen by a frame or by a publisher on its topic (at start-up
        the first trial can begin before the first frame; its queries then wait for their frames)."""
        return self.cameras_seen or any(self.count_publishers(f"camera/{camera}/image_raw") > 0 for camera in CAMERAS)

    def _replay_frames(self, stamp: float) -> dict[str, np.ndarray] | None:
        """Every camera's frame of this instant, small, under the keys an image policy reads (the
        policy here ignores them; the panel replays them); None until each is in sync, as for a
        policy that reads them."""
        frames = {}
        for camera in CAMERAS:
            pixels = self._synced_pixels(camera, stamp)
            if pixels is None:
                return None
            frames[f"{OBS_IMAGE_PREFIX}{camera}"] = keys.resize_images(pixels, self.replay_frame_size)
        return frames

    def _tick(self) -> None:
        from ript.policies.sft import libero_policy_inputs

        trial = self.trial
        observed = self._observation() if trial is not None else None
        if observed is None:
            return
        obs, stamp = observed
        if not self.control_rate_hz and self.state.step <= self.last_step:
            return  # on-observation mode acts once per new observation
        age = self.get_clock().now().nanoseconds * 1e-9 - stamp
        if age > self.stale_after_s:
            self.get_logger().warn(
                f"inputs are {age:.2f} s old (> {self.stale_after_s} s): not acting", throttle_duration_sec=2.0
            )
            return
        inputs = libero_policy_inputs(obs, self.config, self.instruction_embedding)
        if self.replay_in_trial is None:  # decided once per trial: every query records the same keys
            self.replay_in_trial = not self.cameras and self.replay_frame_size > 0 and self._cameras_publish()
        if self.replay_in_trial:
            frames = self._replay_frames(stamp)
            if frames is None:
                return  # this instant's frames are still on their way
            inputs.update(frames)
        try:
            action, query = self.runner.act(inputs)
        except UnsafeAction as exc:
            self.get_logger().error(f"{exc}; sending nothing", throttle_duration_sec=2.0)
            return
        self.last_step = self.state.step
        now = self.get_clock().now().to_msg()
        if query is not None:
            self.chunk_pub.publish(
                ActionChunk(
                    trial_id=trial.trial_id,
                    step=query.step,
                    weights_version=self.weights_version,
                    chunk_size=int(query.actions.shape[0]),
                    action_dim=int(query.actions.shape[1]),
                    actions=query.actions.numpy().astype(np.float32).ravel(),
                    scored=(query.scored.numpy().astype(np.float32).ravel() if query.scored is not None else []),
                    log_probs=(query.log_probs.numpy().astype(np.float32) if query.log_probs is not None else []),
                    stamp=now,
                )
            )
        self.action_pub.publish(
            ActionCommand(
                trial_id=trial.trial_id,
                step=self.state.step,
                weights_version=self.weights_version,
                action=action,
                stamp=now,
            )
        )


def main(args=None) -> None:
    spin_node(PolicyNode, args)


if __name__ == "__main__":
    main()
