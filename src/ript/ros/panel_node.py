"""Operator panel node: the web panel (FastAPI + uvicorn) and its thin ROS adapter.

Hears camera images (best effort), /ript/trial_start, /ript/trial_aborted, /ript/status and /reward
(the simulator's success check becomes a suggestion); publishes the operator's marks as
Reward(source=operator) on /reward; calls /ript/start_trial and /ript/abort_trial, and the Franka
bridge's /robot/estop, /robot/release and /robot/home.
rclpy spins in a background thread, uvicorn serves in the main thread; SIGINT/SIGTERM stop both.

    ript_panel --ros-args -p port:=8000 -p token:=secret -p run_dir:=runs/ros/franka
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import threading

import rclpy
import uvicorn
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from ript_interfaces.msg import Reward, TrainerStatus, TrialStart
from ript_interfaces.srv import AbortTrial, StartTrial
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ript.core.trial_identity import TrialIdentity
from ript.panel.address import announcement
from ript.panel.app import RobotCommand, RobotUnavailable, TrainerUnavailable, create_app
from ript.panel.state import Mark, PanelConfig, PanelState, flush_due
from ript.ros.ros_images import image_to_rgb

RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
SERVICE_TIMEOUT_S = 5.0
SERVICE_DISCOVERY_S = 3.0


class PanelNode(Node):
    def __init__(self) -> None:
        super().__init__("operator_panel")
        p = lambda name, default: self.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True))
        run_dir = str(p("run_dir", "runs/ros/run").value)
        origins = str(p("cors_origins", "").value)
        hosts = str(p("allowed_hosts", "").value)
        self.config = PanelConfig(
            host=str(p("host", "127.0.0.1").value),
            port=int(p("port", 8000).value),
            token=str(p("token", "auto").value),
            auto_accept=bool(p("auto_accept", False).value),
            reward_mode=str(p("reward_mode", "any").value),
            classifier_threshold=float(p("classifier_threshold", 0.9).value),
            undo_window_s=float(p("undo_window_s", 3.0).value),
            marks_file=str(p("marks_file", "").value) or f"{run_dir}/panel/marks.jsonl",
            run_dir=run_dir,
            cors_origins=tuple(o for o in origins.split(",") if o),
            allowed_hosts=tuple(h.strip() for h in hosts.split(",") if h.strip()),
        )
        self.state = PanelState(self.config)
        self.reward_pub = self.create_publisher(Reward, "reward", RELIABLE)
        self.start_client = self.create_client(StartTrial, "ript/start_trial")
        self.abort_client = self.create_client(AbortTrial, "ript/abort_trial")
        self.robot_clients = {
            command: self.create_client(Trigger, f"robot/{command}") for command in ("estop", "release", "home")
        }
        for camera in str(p("cameras", "agentview,wrist").value).split(","):
            if camera:
                self.create_subscription(
                    Image,
                    f"camera/{camera}/image_raw",
                    lambda msg, c=camera: self._on_image(c, msg),
                    qos_profile_sensor_data,
                )
        self.create_subscription(TrialStart, "ript/trial_start", self._on_trial_start, RELIABLE)
        self.create_subscription(String, "ript/trial_aborted", lambda m: self.state.on_trial_aborted(m.data), RELIABLE)
        self.create_subscription(TrainerStatus, "ript/status", self._on_status, RELIABLE)
        # latched by the trainer: a panel started (or restarted) mid-trial still learns the instruction
        self.create_subscription(String, "instruction", lambda m: self.state.on_instruction(m.data), LATCHED)
        self.create_subscription(Reward, "reward", self._on_reward, RELIABLE)
        self.create_timer(0.1, lambda: flush_due(self.state, self.publish))

    # ---- ROS -> panel ----------------------------------------------------------------------------
    def _on_image(self, camera: str, msg: Image) -> None:
        pixels = image_to_rgb(msg)
        if pixels is not None:
            self.state.set_frame(camera, pixels)

    def _on_trial_start(self, msg: TrialStart) -> None:
        self.state.on_trial_start(
            TrialIdentity(msg.trial_id, msg.context_id, msg.iteration, msg.trial_index, msg.group_size, msg.instruction)
        )

    def _on_status(self, msg: TrainerStatus) -> None:
        self.state.on_status(
            {
                "state": msg.state,
                "iteration": msg.iteration,
                "trial_id": msg.trial_id,
                "context_id": msg.context_id,
                "trial_index": msg.trial_index,
                "group_size": msg.group_size,
                "trials_collected": msg.trials_collected,
                "batch_target": msg.batch_target,
                "success_rate": float(msg.success_rate),
                "message": msg.message,
            }
        )

    def _on_reward(self, msg: Reward) -> None:
        mark = self.state.on_reward(msg.trial_id, msg.success, msg.source, float(msg.confidence))
        if mark is not None:  # auto-accept: the suggestion goes out as the operator's mark
            flush_due(self.state, self.publish)

    # ---- panel -> ROS (called from the web server's threads) --------------------------------------
    def publish(self, mark: Mark) -> None:
        self.reward_pub.publish(
            Reward(
                trial_id=mark.trial_id,
                success=mark.success,
                reward=float(mark.success),
                source=Reward.SOURCE_OPERATOR,
                confidence=1.0,
                stamp=self.get_clock().now().to_msg(),
            )
        )
        self.get_logger().info(
            f"{'auto-accepted' if mark.auto else 'operator'} mark: {mark.trial_id} "
            f"{'success' if mark.success else 'failure'}"
        )

    def _call(self, client, request, unavailable=TrainerUnavailable, server="the trainer"):
        # discovery can lag a freshly (re)started node by a moment: wait briefly before giving up
        if not client.wait_for_service(timeout_sec=SERVICE_DISCOVERY_S):
            raise unavailable(f"{client.srv_name} has no server (is {server} running?)")
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        if not done.wait(SERVICE_TIMEOUT_S) or future.result() is None:
            raise unavailable(f"{client.srv_name} did not answer within {SERVICE_TIMEOUT_S:g} s")
        return future.result()

    def start_trial(self) -> tuple[bool, str, str]:
        reply = self._call(self.start_client, StartTrial.Request(context_id="", stochastic=True))
        return reply.accepted, reply.trial_id, reply.message

    def abort_trial(self, trial_id: str, reason: str) -> tuple[bool, str]:
        reply = self._call(self.abort_client, AbortTrial.Request(trial_id=trial_id, reason=reason))
        return reply.accepted, reply.message

    def robot_command(self, command: RobotCommand) -> tuple[bool, str]:
        reply = self._call(self.robot_clients[command], Trigger.Request(), RobotUnavailable, "the franka bridge")
        self.get_logger().warning(f"operator: robot/{command}: {reply.message}")
        return reply.success, reply.message


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        yield  # main() installs the handlers: uvicorn's would re-raise the signal after shutdown


def main(args=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s: %(message)s")
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = PanelNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, name="ros-spin", daemon=True)
    spinner.start()
    server = _Server(uvicorn.Config(create_app(node.state, node), log_level="warning", access_log=False))
    stop = lambda *_: setattr(server, "should_exit", True)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        family = socket.AF_INET6 if ":" in node.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((node.config.host, node.config.port))
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        url = f"http://{shown}:{port}"
        print(
            f"{announcement(url, node.config.token)}\noperator panel: access token {node.config.token}",
            flush=True,
        )
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the teardown short
        executor.shutdown()
        spinner.join(timeout=5)
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    main()
