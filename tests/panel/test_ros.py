"""The panel node over real DDS: a subprocess serving the real app with uvicorn on a free localhost
port; this test's rclpy node plays the trainer (TrialStart, status, the services) and the camera.
A mark made over HTTP arrives on /reward with its trial id; the simulator's success check is a
suggestion, forwarded by auto-accept; 'reset done, start next' calls the trainer's service."""

from __future__ import annotations

import httpx
import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from ript_interfaces.msg import Reward, TrainerStatus, TrialStart
from ript_interfaces.srv import StartTrial
from sensor_msgs.msg import Image

RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
TRIAL = dict(
    trial_id="it0002-g001-c003-k1-a1b2c3",
    context_id="libero_spatial/0/init03",
    iteration=2,
    trial_index=1,
    group_size=4,
    instruction="put the bowl on the plate",
    stochastic=True,
)


def wait_state(ros, panel, done, timeout_s=15.0) -> dict:
    box = {}

    def check():
        box["s"] = httpx.get(f"{panel.url}/api/state", headers=panel.auth, timeout=2).json()
        return done(box["s"])

    assert ros.spin_until(check, timeout_s), box.get("s")
    return box["s"]


def connect(ros, publisher, timeout_s=15.0) -> None:
    assert ros.spin_until(lambda: publisher.get_subscription_count() >= 1, timeout_s), "panel never subscribed"


def test_mark_over_http_arrives_on_reward_and_is_acknowledged(ros, start_panel):
    panel = start_panel()
    node = ros.node
    rewards: list[Reward] = []
    node.create_subscription(Reward, "reward", rewards.append, RELIABLE)
    start_pub = node.create_publisher(TrialStart, "ript/trial_start", RELIABLE)
    status_pub = node.create_publisher(TrainerStatus, "ript/status", RELIABLE)
    camera_pub = node.create_publisher(Image, "camera/agentview/image_raw", qos_profile_sensor_data)
    connect(ros, start_pub)
    connect(ros, status_pub)
    start_pub.publish(TrialStart(**TRIAL))
    status_pub.publish(
        TrainerStatus(state=TrainerStatus.STATE_COLLECTING, iteration=2, trial_id=TRIAL["trial_id"], message="started")
    )
    state = wait_state(ros, panel, lambda s: s["trial"] is not None and s["trainer"]["state"] == "collecting")
    assert state["trial"]["instruction"] == TRIAL["instruction"] and state["trial"]["trial_index"] == 1

    pixels = np.zeros((24, 32, 3), np.uint8)
    pixels[:, :, 0] = 255  # pure red, as rgb8
    image = Image(height=24, width=32, encoding="rgb8", step=32 * 3)
    image.data = pixels.tobytes()
    state = wait_state(ros, panel, lambda s: camera_pub.publish(image) or s["cameras"].get("agentview", 0) >= 1)
    import cv2

    jpeg = httpx.get(f"{panel.url}/api/camera/agentview.jpg", headers=panel.auth, timeout=2).content
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert bgr.shape == (24, 32, 3) and bgr[..., 2].mean() > 200 and bgr[..., 0].mean() < 50  # red stays red

    r = httpx.post(
        f"{panel.url}/api/mark",
        json={"trial_id": TRIAL["trial_id"], "outcome": "success"},
        headers=panel.auth,
        timeout=5,
    )
    # held for the undo window (0.5 s); "published" only if this reply was delayed past it
    assert r.status_code == 200 and r.json()["status"] in ("held", "published"), r.text
    assert ros.spin_until(lambda: rewards, 10.0), "the mark never arrived on /reward"
    (reward,) = rewards
    assert (reward.trial_id, reward.success, reward.reward, reward.source) == (TRIAL["trial_id"], True, 1.0, "operator")
    assert httpx.post(f"{panel.url}/api/undo", headers=panel.auth, timeout=5).status_code == 409  # already out
    status_pub.publish(
        TrainerStatus(
            state=TrainerStatus.STATE_WAITING_FOR_RESET, iteration=2, message=f"stored {TRIAL['trial_id']} (reward 1)"
        )
    )
    state = wait_state(ros, panel, lambda s: s["last_mark"]["status"] == "stored")
    history = httpx.get(f"{panel.url}/api/history", headers=panel.auth, timeout=2).json()
    assert history["iterations"] == [{"iteration": 2, "trials": 1, "success_rate": 1.0}]
    assert len(rewards) == 1


def test_simulator_suggestion_auto_accepted_and_start_next(ros, start_panel):
    panel = start_panel(reward_mode="operator", auto_accept=True)
    node = ros.node
    rewards: list[Reward] = []
    node.create_subscription(Reward, "reward", rewards.append, RELIABLE)
    reward_pub = node.create_publisher(Reward, "reward", RELIABLE)
    start_pub = node.create_publisher(TrialStart, "ript/trial_start", RELIABLE)
    calls = []

    def start_trial(request, response):
        calls.append(request.context_id)
        response.accepted, response.trial_id, response.message = True, TRIAL["trial_id"], "started"
        start_pub.publish(TrialStart(**TRIAL))
        return response

    node.create_service(StartTrial, "ript/start_trial", start_trial)
    connect(ros, start_pub)
    connect(ros, reward_pub)
    # the HTTP call blocks until the service answers, so spin this node meanwhile
    import threading

    reply = {}
    thread = threading.Thread(
        target=lambda: reply.update(r=httpx.post(f"{panel.url}/api/start_next", headers=panel.auth, timeout=10))
    )
    thread.start()
    assert ros.spin_until(lambda: not thread.is_alive(), 15.0)
    thread.join()
    assert reply["r"].status_code == 200 and reply["r"].json()["trial_id"] == TRIAL["trial_id"], reply["r"].text
    assert calls == [""]  # the sampler picks the context, not the panel
    wait_state(ros, panel, lambda s: s["trial"] is not None)
    reward_pub.publish(
        Reward(trial_id=TRIAL["trial_id"], success=False, reward=0.0, source="simulator", confidence=1.0)
    )
    assert ros.spin_until(lambda: any(r.source == "operator" for r in rewards), 10.0), [r.source for r in rewards]
    forwarded = [r for r in rewards if r.source == "operator"]
    assert len(forwarded) == 1 and forwarded[0].trial_id == TRIAL["trial_id"] and forwarded[0].success is False
    state = wait_state(ros, panel, lambda s: s["suggestion"] is False)
    assert state["last_mark"]["auto"] is True and state["trial_closed"] == "marked"


def test_estop_and_home_buttons_call_the_robot_bridge(ros, start_panel):
    from std_srvs.srv import Trigger

    panel = start_panel()
    calls = []

    def serve(name, success, message):
        def handle(request, response):
            calls.append(name)
            response.success, response.message = success, message
            return response

        ros.node.create_service(Trigger, f"robot/{name}", handle)

    serve("estop", True, "e-stop latched: commanding stopped (robot/release clears it)")
    serve("home", False, "cannot home: e-stop latched (call robot/release to clear)")
    import threading

    replies = {}

    def post(name):
        replies[name] = httpx.post(f"{panel.url}/api/robot/{name}", headers=panel.auth, timeout=10)

    for name in ("estop", "home"):  # the HTTP call blocks until the service answers: spin meanwhile
        thread = threading.Thread(target=post, args=(name,))
        thread.start()
        assert ros.spin_until(lambda: not thread.is_alive(), 15.0)
        thread.join()
    assert replies["estop"].status_code == 200 and replies["estop"].json()["message"].startswith("e-stop latched")
    assert replies["home"].status_code == 409 and "e-stop latched" in replies["home"].json()["detail"]
    assert calls == ["estop", "home"]
    r = httpx.post(f"{panel.url}/api/robot/release", headers=panel.auth, timeout=10)  # nobody serves it
    assert r.status_code == 503 and r.json()["error"] == "robot_unavailable", r.text
