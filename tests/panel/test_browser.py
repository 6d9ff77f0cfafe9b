"""The panel in Debian's headless Chromium (Selenium + chromedriver): the page loads with the token
from the URL fragment, shows the trial and the camera image changing as frames arrive, and a click
on Success reaches the trainer (this test's node, subscribed to /reward) as the operator's reward;
a click on a dot of the per-context history replays that stored trial.
Set RIPT_PANEL_SCREENSHOT=docs/operator_panel.png to keep the screenshot."""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest
import torch
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from ript_interfaces.msg import Reward, TrainerStatus, TrialStart
from selenium.common.exceptions import WebDriverException
from sensor_msgs.msg import Image

from ript.core.constants import OBS_IMAGE_AGENTVIEW, OBS_STATE
from ript.core.trial_store import StoredTrial, TrialStore
from ript.core.trials import Trajectory

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (scripts/apt-packages.txt)"
)
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
TRIAL = dict(
    trial_id="it0005-g002-c001-k2-9f8e7d",
    context_id="libero_spatial/0/init01",
    iteration=5,
    trial_index=2,
    group_size=4,
    instruction="pick up the black bowl and place it on the plate",
    stochastic=True,
)


def scene(t: int, size: int = 128) -> np.ndarray:
    """A table-like scene with a red block that moves with t, so consecutive frames differ."""
    y, x = np.mgrid[0:size, 0:size]
    pixels = np.stack([90 + x // 4, 70 + y // 4, 50 + 0 * x], axis=-1).astype(np.uint8)
    cx, cy = 30 + (t * 3) % 70, 60 + int(10 * np.sin(t / 5))
    pixels[cy : cy + 16, cx : cx + 16] = (220, 30, 30)
    return pixels


def frame(t: int, size: int = 128) -> Image:
    msg = Image(height=size, width=size, encoding="rgb8", step=size * 3)
    msg.data = scene(t, size).tobytes()
    return msg


def journal(path, iterations=4) -> None:
    """Marks of earlier iterations (what a restarted panel reloads), so the plot has a history."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with path.open("w") as f:
        for it in range(1, iterations + 1):
            for k in range(8):
                mid = f"m{it}{k}"
                ok = bool(rng.random() < 0.25 + 0.15 * it)
                f.write(
                    json.dumps(
                        {
                            "event": "mark",
                            "mark_id": mid,
                            "trial_id": f"it{it:04d}-k{k}",
                            "success": ok,
                            "source": "operator",
                            "iteration": it,
                            "context_id": f"libero_spatial/0/init0{k % 4}",
                            "marked_at": 0.0,
                        }
                    )
                    + "\n"
                )
                f.write(json.dumps({"event": "stored", "mark_id": mid}) + "\n")


def test_page_shows_camera_and_success_click_reaches_the_trainer(ros, start_panel, browser, tmp_path):
    marks = tmp_path / "marks.jsonl"
    journal(marks)
    panel = start_panel(marks_file=str(marks), undo_window_s=1.0)
    node = ros.node
    rewards: list[Reward] = []
    node.create_subscription(Reward, "reward", rewards.append, RELIABLE)
    start_pub = node.create_publisher(TrialStart, "ript/trial_start", RELIABLE)
    status_pub = node.create_publisher(TrainerStatus, "ript/status", RELIABLE)
    camera_pubs = [
        node.create_publisher(Image, f"camera/{c}/image_raw", qos_profile_sensor_data) for c in ("agentview", "wrist")
    ]
    assert ros.spin_until(lambda: start_pub.get_subscription_count() and status_pub.get_subscription_count(), 15)
    start_pub.publish(TrialStart(**TRIAL))
    tick = [0]

    def stream() -> None:
        """One new frame per camera and a status, as the robot and the trainer would send them."""
        tick[0] += 1
        for i, pub in enumerate(camera_pubs):
            pub.publish(frame(tick[0] + 20 * i))
        status_pub.publish(
            TrainerStatus(
                state=TrainerStatus.STATE_COLLECTING,
                iteration=5,
                trial_id=TRIAL["trial_id"],
                trial_index=2,
                group_size=4,
                trials_collected=11,
                batch_target=32,
                message=f"started {TRIAL['trial_id']}",
            )
        )

    def until(check, timeout_s=20.0, what=""):
        deadline = time.monotonic() + timeout_s
        while True:
            stream()
            ros.spin_until(lambda: False, 0.1)
            try:
                if check():
                    return
            except Exception:  # the element may not exist yet
                pass
            assert time.monotonic() < deadline, f"timed out waiting for {what}\n{panel.output()}"

    browser.get(f"{panel.url}/#token={panel.token}")
    assert "#token" not in browser.current_url  # the page moves the token out of the address bar
    by_id = browser.find_element
    until(lambda: by_id("id", "instruction").text == TRIAL["instruction"], what="the instruction")
    until(lambda: by_id("id", "trainer-state").text == "collecting", what="the trainer state")
    assert "trial 3 of 4" in by_id("id", "progress").text and "11/32" in by_id("id", "progress").text

    loaded = lambda: browser.execute_script(
        "const i = document.getElementById('cam-agentview'); return i.complete && i.naturalWidth > 0 ? i.src : '';"
    )
    until(lambda: loaded(), what="a camera frame")
    first = loaded()
    until(lambda: loaded() and loaded() != first, what="the camera image to change")
    until(
        lambda: browser.execute_script("return document.querySelectorAll('#contexts .dot').length") == 32,
        what="the per-context history",
    )
    time.sleep(0.3)
    shot = tmp_path / "operator_panel.png"
    browser.save_screenshot(str(shot))
    if os.environ.get("RIPT_PANEL_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["RIPT_PANEL_SCREENSHOT"])

    by_id("id", "btn-success").click()
    until(lambda: "marked" in by_id("id", "feedback").text, what="the mark's confirmation")
    until(lambda: rewards, what="the reward on /reward")
    (reward,) = rewards
    assert (reward.trial_id, reward.success, reward.source) == (TRIAL["trial_id"], True, "operator")
    # keyboard: a second mark of the same trial is refused (409) and says so on the page
    by_id("tag name", "body").send_keys("f")
    until(lambda: "409" in by_id("id", "feedback").text, what="the 409 for a second mark")
    assert len(rewards) == 1

    # "Run report": the trainer's run folder as `ript report` shows it, made now, in a new tab,
    # through a one-visit link (the token stays out of every URL)
    from ript.core.metrics import MetricsLogger

    logger = MetricsLogger(tmp_path / "run0", tensorboard=False)
    for it, rate in enumerate([0.25, 0.4, 0.6], start=1):
        logger.log(
            it,
            {
                "iteration": it,
                "rollout/success_rate": rate,
                "sampler/trials": 32.0,
                "sampler/mixed_groups_per_100_trials": 10.0 + it,
                "stats/approx_kl": 0.01 * it,
                "time/rollout_s": 30.0,
                "time/update_s": 5.0,
                "env_steps": 5000 * it,
            },
        )
    panel_tab = browser.current_window_handle
    by_id("id", "btn-report").click()
    until(lambda: len(browser.window_handles) == 2, what="the report's tab")
    browser.switch_to.window(next(h for h in browser.window_handles if h != panel_tab))
    until(lambda: browser.title.startswith("ript run"), what="the report page")
    assert "token" not in browser.current_url and "/report/" in browser.current_url
    images = browser.execute_script("return [...document.images].map(i => i.complete && i.naturalWidth > 0);")
    assert len(images) >= 3 and all(images), images
    assert "mixed groups per 100 trials" in browser.find_element("tag name", "table").text
    browser.refresh()  # the link was for one visit
    until(lambda: "no such report link" in browser.page_source, what="the used link's refusal")


def store(run_dir, trial_id: str, context_id: str, reward: float, judge: str, frames: int) -> None:
    """A trial as the trainer stores it; `frames` agentview frames of the scene (0: a state-only trial)."""
    queries = max(frames, 2)
    obs = {OBS_STATE: torch.zeros(queries, 8)}
    if frames:
        obs[OBS_IMAGE_AGENTVIEW] = torch.from_numpy(np.stack([scene(5 * t) for t in range(frames)]))
    trajectory = Trajectory(
        obs=obs,
        scored=torch.zeros(queries, 4),
        log_probs=torch.zeros(queries, 4),
        mask=torch.ones(queries, 4, dtype=torch.bool),
        num_steps=8 * queries,
    )
    TrialStore(run_dir / "trials").save(StoredTrial(trial_id, 4, 0, 0, context_id, reward, judge, 4, trajectory))


def test_history_dot_replays_the_stored_trial(start_panel, browser, tmp_path):
    marks = tmp_path / "marks.jsonl"
    journal(marks)
    outcome = {r["trial_id"]: r for r in map(json.loads, marks.read_text().splitlines()) if r["event"] == "mark"}
    played, state_only = outcome["it0004-k3"], outcome["it0004-k1"]
    run_dir = tmp_path / "run0"  # start_panel's first run folder: the trainer's, whose trials/ the panel reads
    store(run_dir, played["trial_id"], played["context_id"], float(played["success"]), "operator", frames=6)
    store(run_dir, state_only["trial_id"], state_only["context_id"], float(state_only["success"]), "classifier", 0)
    panel = start_panel(marks_file=str(marks))
    browser.get(f"{panel.url}/#token={panel.token}")
    text = lambda element_id: browser.find_element("id", element_id).text

    def until(check, what: str, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if check():
                    return
            except WebDriverException:  # not there yet, or redrawn by the history's poll
                pass
            assert time.monotonic() < deadline, f"timed out waiting for {what}\n{panel.output()}"
            time.sleep(0.1)

    def click_dot(trial_id: str) -> bool:
        browser.find_element("css selector", f'#contexts .dot[data-trial-id="{trial_id}"]').click()
        return True

    def verdict(record) -> str:
        return f"reward {int(record['success'])} ({'success' if record['success'] else 'failure'})"

    shown = lambda: browser.execute_script(
        "const i = document.getElementById('replay-frame');"
        "return i.complete && i.naturalWidth > 0 && !i.closest('[hidden]') ? [i.naturalWidth, i.src] : null;"
    )
    assert not browser.find_element("id", "replay").is_displayed()
    until(lambda: click_dot(played["trial_id"]), "the history dot")
    until(lambda: text("replay-judge") == "operator", "the replay's judge")
    assert text("replay-reward") == verdict(played) and text("replay-trial") == played["trial_id"]
    assert f"iteration 4 · context {played['context_id']}" in text("replay-info")
    until(lambda: shown() and text("replay-position") == "frame 1 of 6", "the first frame")
    width, first = shown()
    assert width == 128
    browser.find_element("id", "replay-play").click()
    until(lambda: text("replay-position") == "frame 6 of 6" and text("replay-play") == "Play", "the flip-book's end")
    assert shown()[1] != first

    until(lambda: click_dot(state_only["trial_id"]), "the state-only trial's dot")
    until(lambda: text("replay-judge") == "classifier", "the state-only trial's judge")
    assert text("replay-reward") == verdict(state_only) and "no camera frames" in text("replay-note")
    assert not browser.find_element("id", "replay-player").is_displayed()

    until(lambda: click_dot("it0001-k0"), "a dot of a trial the store does not hold")
    until(lambda: "not in the trial store" in text("replay-note"), "the 404's reason")
    browser.find_element("id", "replay-close").click()
    assert not browser.find_element("id", "replay").is_displayed()
