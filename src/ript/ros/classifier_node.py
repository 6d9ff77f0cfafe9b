"""Success-classifier node: judges trials from a camera and learns from the operator's marks.

    TrialStart (/ript/trial_start)       -> judge this trial from now on
    Image (/camera/<camera>/image_raw)   -> P(success); a confident success, or the verdict at the
                                            step budget, goes out as Reward(source=classifier,
                                            confidence) on /reward
    RobotState (/robot/state)            -> the trial's step (for the step budget)
    Reward (/reward) from the operator   -> the trial's last frame + the mark are stored as a
                                            labelled example (<data_dir>/<trial_id>.npz) for
                                            `ript train-classifier`

Without a model it only collects examples. The operator always wins: with the trainer's
`reward_mode: operator` only the operator's marks count, and the panel turns a classifier verdict
into a mark only when its confidence reaches the panel's threshold (held for the undo window, so
the operator can still override it); below the threshold the operator is asked.

    ript_classifier --ros-args -p model:=runs/classifier/classifier.ckpt -p threshold:=0.9
"""

from __future__ import annotations

from pathlib import Path

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from ript_interfaces.msg import Reward, RobotState, TrialStart
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ript.policies.success_classifier import OutcomeJudge, load_classifier, save_examples
from ript.ros.ros_images import image_to_rgb
from ript.ros.ros_main import spin_node

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


class ClassifierNode(Node):
    def __init__(self) -> None:
        super().__init__("success_classifier")
        p = lambda name, default: self.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True))
        model_path = str(p("model", "").value)
        camera = str(p("camera", "agentview").value)
        run_dir = str(p("run_dir", "runs/ros/run").value)
        self.data_dir = Path(str(p("data_dir", "").value) or f"{run_dir}/classifier/examples")
        self.record_examples = bool(p("record_examples", True).value)
        predict = None
        if model_path:
            import torch

            torch.set_num_threads(1)  # one frame at a time: threads only add latency beside the policy
            model, report = load_classifier(model_path)
            predict = model.predict
            heldout = (report.get("heldout_trials_verdict") or report.get("heldout") or {}).get("accuracy")
            self.get_logger().info(
                f"classifier {model_path} loaded (held-out accuracy {'n/a' if heldout is None else f'{heldout:.3f}'})"
            )
        else:
            self.get_logger().info("no model: collecting the operator's marks as examples only")
        self.judge = OutcomeJudge(
            predict,
            threshold=float(p("threshold", 0.9).value),
            confirm_frames=int(p("confirm_frames", 3).value),
            judge_every=int(p("judge_every", 1).value),
            episode_steps=int(p("episode_steps", 0).value),
        )
        self.step = 0
        self.reward_pub = self.create_publisher(Reward, "reward", RELIABLE)
        self.create_subscription(TrialStart, "ript/trial_start", self._on_trial_start, RELIABLE)
        self.create_subscription(Image, f"camera/{camera}/image_raw", self._on_image, qos_profile_sensor_data)
        self.create_subscription(RobotState, "robot/state", self._on_state, qos_profile_sensor_data)
        self.create_subscription(Reward, "reward", self._on_reward, RELIABLE)
        self.create_subscription(String, "ript/trial_aborted", lambda msg: self.judge.on_judged(msg.data), RELIABLE)

    def _on_trial_start(self, msg: TrialStart) -> None:
        self.judge.start(msg.trial_id)
        self.step = 0

    def _on_state(self, msg: RobotState) -> None:
        if msg.trial_id == self.judge.trial_id:
            self.step = msg.step

    def _on_image(self, msg: Image) -> None:
        image = image_to_rgb(msg)
        if image is None or self.judge.trial_id is None:
            return
        verdict = self.judge.on_frame(self.judge.trial_id, image, self.step)
        if verdict is None:
            return
        self.reward_pub.publish(
            Reward(
                trial_id=verdict.trial_id,
                success=verdict.success,
                reward=float(verdict.success),
                source=Reward.SOURCE_CLASSIFIER,
                confidence=verdict.confidence,
                stamp=self.get_clock().now().to_msg(),
            )
        )
        self.get_logger().info(
            f"{verdict.trial_id}: {'success' if verdict.success else 'failure'} "
            f"(confidence {verdict.confidence:.2f}; {verdict.reason})"
        )

    def _on_reward(self, msg: Reward) -> None:
        if msg.source == Reward.SOURCE_CLASSIFIER:
            return
        self.judge.on_judged(msg.trial_id)
        if msg.source != Reward.SOURCE_OPERATOR or not self.record_examples:
            return
        frame = self.judge.example(msg.trial_id)
        if frame is None:
            self.get_logger().warning(f"operator mark for {msg.trial_id}: no camera frame of that trial to store")
            return
        path = save_examples(self.data_dir / f"{msg.trial_id}.npz", frame[None], [int(msg.success)], [msg.trial_id])
        self.get_logger().info(f"stored labelled example {path} ({'success' if msg.success else 'failure'})")


def main(args=None) -> None:
    spin_node(ClassifierNode, args)


if __name__ == "__main__":
    main()
