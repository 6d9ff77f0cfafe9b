"""The panel's FastAPI app against its real state (journal on disk), with ROS stood in by a
recorder: tokens, JSON errors, marks persisted before they go out, undo, static files, CORS, and a
schemathesis fuzz of the OpenAPI schema that must never get a 5xx."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import schemathesis
import torch
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from ript.core.constants import OBS_IMAGE_AGENTVIEW, OBS_STATE
from ript.core.trial_identity import TrialIdentity
from ript.core.trial_store import StoredTrial, TrialStore
from ript.core.trials import Trajectory
from ript.panel.app import RobotUnavailable, create_app
from ript.panel.state import PanelConfig, PanelState

TOKEN = "unit-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "http://127.0.0.1"  # the Host a browser on the robot's machine sends


class Recorder:
    """Stands in for the ROS node: records what the panel would publish and call."""

    def __init__(self, state: PanelState):
        self.state, self.published, self.aborted, self.robot = state, [], [], []
        self.estopped, self.bridge_running = False, True

    def publish(self, mark):
        # the mark must be on disk before it goes out
        assert any(json.loads(line).get("mark_id") == mark.mark_id for line in self.state.path.read_text().splitlines())
        self.published.append((mark.trial_id, mark.success))

    def start_trial(self):
        return False, "", "trial it0001 is still running"

    def abort_trial(self, trial_id, reason):
        self.aborted.append((trial_id, reason))
        return True, f"aborted {trial_id}"

    def robot_command(self, command):
        """As the franka bridge answers its Trigger services."""
        if not self.bridge_running:
            raise RobotUnavailable(f"/robot/{command} has no server (is the franka bridge running?)")
        self.robot.append(command)
        if command == "home" and self.estopped:
            return False, "cannot home: e-stop latched (call robot/release to clear)"
        self.estopped = {"estop": True, "release": False}.get(command, self.estopped)
        return True, f"{command} done"


def trial(n: int = 1) -> TrialIdentity:
    return TrialIdentity(f"it0001-g000-c000-k{n}-abc", "libero_spatial/0/init00", 1, n, 4, "pick up the bowl")


@pytest.fixture
def panel(tmp_path):
    state = PanelState(PanelConfig(token=TOKEN, undo_window_s=0.0, marks_file=str(tmp_path / "marks.jsonl")))
    recorder = Recorder(state)
    with TestClient(create_app(state, recorder), base_url=BASE, raise_server_exceptions=False) as client:
        yield state, recorder, client


def test_token_is_required_for_every_state_change(panel):
    state, recorder, client = panel
    state.on_trial_start(trial())
    body = {"trial_id": trial().trial_id, "outcome": "success"}
    for path, payload in [
        ("/api/mark", body),
        ("/api/undo", {}),
        ("/api/start_next", {}),
        ("/api/abort", {"trial_id": trial().trial_id}),
        ("/api/accept_suggestion", body),
        ("/api/robot/estop", {}),
        ("/api/robot/release", {}),
        ("/api/robot/home", {}),
    ]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            r = client.post(path, json=payload, headers=headers)
            assert r.status_code == 401 and r.json()["error"] == "unauthorized", (path, headers, r.text)
    assert recorder.published == [] and recorder.aborted == [] and recorder.robot == []


def test_mark_is_persisted_published_and_409_when_no_trial_or_already_marked(panel):
    state, recorder, client = panel
    r = client.post("/api/mark", json={"trial_id": "x", "outcome": "success"}, headers=AUTH)
    assert r.status_code == 409 and r.json() == {"error": "conflict", "detail": "no active trial"}
    state.on_trial_start(trial())
    r = client.post("/api/mark", json={"trial_id": trial().trial_id, "outcome": "failure"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "published", r.text
    assert recorder.published == [(trial().trial_id, False)]
    r = client.post("/api/mark", json={"trial_id": trial().trial_id, "outcome": "success"}, headers=AUTH)
    assert r.status_code == 409 and "already marked" in r.json()["detail"]
    assert client.post("/api/mark", json={"trial_id": "other", "outcome": "success"}, headers=AUTH).status_code == 409
    assert recorder.published == [(trial().trial_id, False)]
    events = [json.loads(line)["event"] for line in state.path.read_text().splitlines()]
    assert events == ["mark", "published"]
    # the history shows what the trainer stored, once it says so
    assert client.get("/api/history", headers=AUTH).json()["iterations"] == []
    state.on_status({"state": "waiting_for_reset", "message": f"stored {trial().trial_id} (reward 0)"})
    history = client.get("/api/history", headers=AUTH).json()
    assert history["iterations"] == [{"iteration": 1, "trials": 1, "success_rate": 0.0}]
    assert history["contexts"] == [
        {"context_id": "libero_spatial/0/init00", "outcomes": [False], "trial_ids": [trial().trial_id]}
    ]


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"trial_id": "t"},
        {"trial_id": "t", "outcome": "maybe"},
        {"trial_id": "", "outcome": "success"},
        {"trial_id": "t", "outcome": "success", "x": 1},
        [1, 2],
        "text",
    ],
)
def test_malformed_requests_get_422_json(panel, payload):
    state, recorder, client = panel
    state.on_trial_start(trial())
    r = client.post("/api/mark", json=payload, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"] == "malformed", r.text
    r = client.post("/api/mark", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "malformed"


def test_undo_within_the_window_and_not_after(tmp_path):
    now = [100.0]
    state = PanelState(
        PanelConfig(token=TOKEN, undo_window_s=3.0, marks_file=str(tmp_path / "m.jsonl")), clock=lambda: now[0]
    )
    recorder = Recorder(state)
    with TestClient(create_app(state, recorder), base_url=BASE) as client:
        state.on_trial_start(trial())
        tid = trial().trial_id
        assert (
            client.post("/api/mark", json={"trial_id": tid, "outcome": "success"}, headers=AUTH).json()["status"]
            == "held"
        )
        assert client.get("/api/state", headers=AUTH).json()["undo_left_s"] == pytest.approx(3.0)
        now[0] += 1.0
        assert client.post("/api/undo", headers=AUTH).json()["status"] == "undone"
        assert client.post("/api/undo", headers=AUTH).status_code == 409
        # the trial takes a mark again: the operator's correction
        client.post("/api/mark", json={"trial_id": tid, "outcome": "failure"}, headers=AUTH)
        now[0] += 3.5
        assert state.due() and client.post("/api/undo", headers=AUTH).status_code == 409
    # a restarted panel reads the journal: the undone mark stays undone, the held one was never sent
    again = PanelState(PanelConfig(token=TOKEN, marks_file=str(tmp_path / "m.jsonl")))
    assert [m.status for m in again.marks] == ["undone", "lost"]


def test_suggestion_accept_and_auto_accept(tmp_path):
    state = PanelState(
        PanelConfig(token=TOKEN, undo_window_s=0, reward_mode="operator", marks_file=str(tmp_path / "m.jsonl"))
    )
    recorder = Recorder(state)
    with TestClient(create_app(state, recorder), base_url=BASE) as client:
        state.on_trial_start(trial())
        assert (
            client.post("/api/accept_suggestion", json={"trial_id": trial().trial_id}, headers=AUTH).status_code == 409
        )
        assert state.on_reward(trial().trial_id, True, "simulator") is None  # a suggestion, not a mark
        assert client.get("/api/state", headers=AUTH).json()["suggestion"] is True
        r = client.post("/api/mark", json={"trial_id": trial().trial_id, "outcome": "failure"}, headers=AUTH)
        assert r.json()["success"] is False  # the operator overrides the simulator
    auto = PanelState(
        PanelConfig(token=TOKEN, auto_accept=True, reward_mode="operator", marks_file=str(tmp_path / "a.jsonl"))
    )
    auto.on_trial_start(trial(2))
    mark = auto.on_reward(trial(2).trial_id, True, "simulator")
    assert mark is not None and mark.auto and mark.success and auto.due() == [mark]


def test_classifier_verdict_is_a_mark_only_when_confident_and_the_operator_wins(tmp_path):
    now = [1000.0]
    state = PanelState(
        PanelConfig(
            token=TOKEN,
            reward_mode="operator",
            classifier_threshold=0.9,
            undo_window_s=3,
            marks_file=str(tmp_path / "m.jsonl"),
        ),
        clock=lambda: now[0],
    )
    with TestClient(create_app(state, Recorder(state)), base_url=BASE) as client:
        # unsure: shown, the operator is asked
        state.on_trial_start(trial(1))
        assert state.on_reward(trial(1).trial_id, True, "classifier", 0.7) is None
        shown = client.get("/api/state", headers=AUTH).json()
        assert (shown["suggestion"], shown["suggestion_source"], shown["suggestion_confidence"]) == (
            True,
            "classifier",
            0.7,
        )
        assert (
            client.post("/api/mark", json={"trial_id": trial(1).trial_id, "outcome": "failure"}, headers=AUTH).json()[
                "success"
            ]
            is False
        )
        # confident: accepted automatically, but held for the undo window; the operator overrides it
        state.on_trial_start(trial(2))
        mark = state.on_reward(trial(2).trial_id, True, "classifier", 0.95)
        assert mark is not None and mark.auto and mark.success and state.due() == []
        assert client.post("/api/undo", headers=AUTH).json()["status"] == "undone"
        r = client.post("/api/mark", json={"trial_id": trial(2).trial_id, "outcome": "failure"}, headers=AUTH)
        now[0] += 3.5
        first, sent = state.due()  # trial 1's mark and the correction; the undone verdict never goes out
        assert first.trial_id == trial(1).trial_id and sent.trial_id == trial(2).trial_id
        assert r.status_code == 200 and sent.success is False and not sent.auto
        # a confident verdict after the operator's mark changes nothing
        assert state.on_reward(trial(2).trial_id, True, "classifier", 0.99) is None


def test_abort_and_start_next_go_to_the_trainer(panel):
    state, recorder, client = panel
    state.on_trial_start(trial())
    r = client.post("/api/abort", json={"trial_id": trial().trial_id}, headers=AUTH)
    assert r.status_code == 200 and recorder.aborted == [(trial().trial_id, "operator: unsafe")]
    assert (
        client.post("/api/mark", json={"trial_id": trial().trial_id, "outcome": "failure"}, headers=AUTH).status_code
        == 409
    )  # discarded, not a failure
    r = client.post("/api/start_next", headers=AUTH)
    assert r.status_code == 409 and "still running" in r.json()["detail"]


def test_estop_release_and_home_go_to_the_robot_bridge(panel):
    state, recorder, client = panel
    r = client.post("/api/robot/estop", headers=AUTH)
    assert r.status_code == 200 and r.json()["accepted"] is True, r.text
    r = client.post("/api/robot/home", headers=AUTH)  # the bridge refuses to move while e-stopped
    assert r.status_code == 409 and r.json() == {
        "error": "conflict",
        "detail": "cannot home: e-stop latched (call robot/release to clear)",
    }
    assert client.post("/api/robot/release", headers=AUTH).status_code == 200
    assert client.post("/api/robot/home", headers=AUTH).json()["message"] == "home done"
    assert recorder.robot == ["estop", "home", "release", "home"]
    recorder.bridge_running = False
    r = client.post("/api/robot/estop", headers=AUTH)
    assert r.status_code == 503 and r.json()["error"] == "robot_unavailable" and "franka bridge" in r.json()["detail"]
    assert client.get("/").text.count("btn-estop") == 1


def test_static_files_cannot_escape_and_cors_is_closed(panel):
    state, recorder, client = panel
    assert client.get("/").status_code == 200 and "operator panel" in client.get("/").text
    assert client.get("/static/panel.js").status_code == 200
    for path in [
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2fapp.py",
        "/static/%2e%2e%2fstate.py",
        "/static/....//app.py",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
    ]:
        r = client.get(path)
        assert r.status_code == 404 and "PanelState" not in r.text and "root:" not in r.text, path
    r = client.options("/api/mark", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers
    r = client.get("/api/state", headers={**AUTH, "Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    assert client.get("/openapi.json").json()["info"]["title"] == "ript operator panel"


def test_camera_frame_is_served_as_jpeg(panel):
    state, recorder, client = panel
    assert client.get("/api/camera/agentview.jpg", headers=AUTH).status_code == 404
    state.set_frame("agentview", np.full((32, 48, 3), 200, np.uint8))
    r = client.get("/api/camera/agentview.jpg", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    assert r.headers["x-frame-seq"] == "1"


def test_fuzz_api_never_answers_5xx(tmp_path):
    """Every operation of the served OpenAPI schema, with schemathesis-generated requests, with and
    without the token (schemathesis' pytest plugin is not used: it predates pytest 9)."""
    # schemathesis' ASGI client sends Host: testserver
    state = PanelState(
        PanelConfig(
            token=TOKEN,
            undo_window_s=0.5,
            marks_file=str(tmp_path / "m.jsonl"),
            allowed_hosts=("testserver",),
            run_dir=str(tmp_path / "run"),
        )
    )
    store_trial(tmp_path / "run", "it0001", 1.0, "operator", frames=2)  # a short id the fuzzer may hit
    state.on_trial_start(trial())
    state.set_frame("agentview", np.zeros((8, 8, 3), np.uint8))
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(state, Recorder(state)))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/api/mark",
        "/api/undo",
        "/api/abort",
        "/api/start_next",
        "/api/state",
        "/api/camera/{camera}.jpg",
        "/api/trials/{trial_id}",
        "/api/trials/{trial_id}/frames/{index}.jpg",
        "/health",
        "/api/robot/estop",
        "/api/robot/release",
        "/api/robot/home",
    }
    seen = set()

    # valid requests, and requests that break the schema (negative mode: they must get a 4xx, never 5xx)
    @given(
        case=st.one_of(
            [
                op.as_strategy(generation_mode=mode)
                for op in operations
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            ]
        )
    )
    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case):
        for headers in (None, AUTH):  # the 401 path, and the handlers themselves
            response = case.call(headers=headers)
            seen.add((case.path, response.status_code))
            assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text)
            content_type = (response.headers.get("content-type") or [""])[0]
            assert content_type.startswith(("application/json", "image/jpeg")), content_type

    fuzz()
    assert {code for _, code in seen} >= {200, 401, 422}, seen


def test_reads_need_the_token_and_foreign_hosts_and_origins_are_refused(panel):
    """A DNS-rebinding page (its own domain name resolving to 127.0.0.1) or another site's page
    must not read the scene or press a button; /docs does not exist (it would need a CDN)."""
    state, recorder, client = panel
    state.on_trial_start(trial())
    state.set_frame("agentview", np.full((8, 8, 3), 10, np.uint8))
    for path in ("/api/state", "/api/history", "/api/camera/agentview.jpg"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers=AUTH).status_code == 200, path
        r = client.get(path, headers={**AUTH, "Host": "rebind.evil.example:8000"})
        assert r.status_code == 403 and r.json()["error"] == "forbidden_host", path
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "10.1.2.3"):
        assert client.get("/api/state", headers={**AUTH, "Host": host}).status_code == 200, host
    body = {"trial_id": trial().trial_id, "outcome": "success"}
    r = client.post("/api/mark", json=body, headers={**AUTH, "Origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden_origin" and recorder.published == []
    r = client.post("/api/mark", json=body, headers={**AUTH, "Origin": BASE, "Host": "127.0.0.1"})
    assert r.status_code == 200 and recorder.published == [(trial().trial_id, True)]
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404


def test_report_link_is_for_one_visit_and_the_page_loads_nothing(tmp_path):
    from ript.core.metrics import MetricsLogger

    run_dir = tmp_path / "run"
    state = PanelState(PanelConfig(token=TOKEN, marks_file=str(tmp_path / "m.jsonl"), run_dir=str(run_dir)))
    with TestClient(create_app(state, Recorder(state)), base_url=BASE) as client:
        assert client.post("/api/report").status_code == 401
        url = client.post("/api/report", headers=AUTH).json()["url"]
        r = client.get(url)  # a run folder with nothing to report yet
        assert r.status_code == 409 and "is not a run folder" in r.json()["detail"]
        MetricsLogger(run_dir, tensorboard=False).log(
            1, {"iteration": 1, "rollout/success_rate": 0.5, "sampler/trials": 16.0, "env_steps": 100}
        )
        url = client.post("/api/report", headers=AUTH).json()["url"]
        assert url.startswith("/report/") and TOKEN not in url
        r = client.get(url)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert (
            r.headers["content-security-policy"]
            == "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'"
        )
        assert "<h2>Summary</h2>" in r.text and "<script" not in r.text
        assert client.get(url).status_code == 404, "a link serves one visit"
        assert client.get("/report/guessed").json()["error"] == "not_found"
    no_run = PanelState(PanelConfig(token=TOKEN, marks_file=str(tmp_path / "n.jsonl")))
    with TestClient(create_app(no_run, Recorder(no_run)), base_url=BASE) as client:
        assert client.post("/api/report", headers=AUTH).status_code == 404


# ---- trial replay -------------------------------------------------------------------------------
def store_trial(run_dir, trial_id: str, reward: float, source: str, frames: int = 0) -> Path:
    """A trial as the trainer stores it; with `frames`, agentview frames whose brightness is 20 * index."""
    queries = max(frames, 2)
    obs = {OBS_STATE: torch.zeros(queries, 4)}
    if frames:
        obs[OBS_IMAGE_AGENTVIEW] = torch.stack(
            [torch.full((16, 24, 3), 20 * i, dtype=torch.uint8) for i in range(frames)]
        )
    trajectory = Trajectory(
        obs=obs,
        scored=torch.zeros(queries, 2),
        log_probs=torch.zeros(queries, 2),
        mask=torch.ones(queries, 2, dtype=torch.bool),
        num_steps=4 * queries,
    )
    trial = StoredTrial(trial_id, 1, 0, 0, "libero_spatial/0/init00", reward, source, 3, trajectory)
    return TrialStore(run_dir / "trials").save(trial)


@pytest.fixture
def replay_panel(tmp_path):
    run_dir = tmp_path / "run"
    state = PanelState(PanelConfig(token=TOKEN, marks_file=str(tmp_path / "m.jsonl"), run_dir=str(run_dir)))
    with TestClient(create_app(state, Recorder(state)), base_url=BASE, raise_server_exceptions=False) as client:
        yield run_dir, client


def test_stored_trial_replays_with_its_frames_reward_and_judge(replay_panel):
    run_dir, client = replay_panel
    store_trial(run_dir, "it0001-g000-c000-k0-aaaa01", 1.0, "operator", frames=5)
    store_trial(run_dir, "it0001-g000-c000-k1-aaaa02", 0.0, "simulator")
    url = "/api/trials/it0001-g000-c000-k0-aaaa01"
    assert client.get(url).status_code == 401 and client.get(f"{url}/frames/0.jpg").status_code == 401
    assert client.get(url, headers=AUTH).json() == {
        "trial_id": "it0001-g000-c000-k0-aaaa01",
        "iteration": 1,
        "context_id": "libero_spatial/0/init00",
        "reward": 1.0,
        "reward_source": "operator",
        "weights_version": 3,
        "num_steps": 20,
        "frames": 5,
        "cameras": ["agentview"],
    }
    for index in (0, 4):
        r = client.get(f"{url}/frames/{index}.jpg", headers=AUTH)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        pixels = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
        assert pixels.shape == (16, 24, 3) and abs(pixels.mean() - 20 * index) < 3
    assert client.get(f"{url}/frames/0.jpg?camera=agentview", headers=AUTH).status_code == 200
    r = client.get(f"{url}/frames/5.jpg", headers=AUTH)
    assert r.status_code == 404 and "has 5 frames" in r.json()["detail"]
    assert client.get(f"{url}/frames/0.jpg?camera=wrist", headers=AUTH).status_code == 404
    # a state-only trial: its reward and judge, and no frames
    state_only = client.get("/api/trials/it0001-g000-c000-k1-aaaa02", headers=AUTH).json()
    assert (state_only["reward"], state_only["reward_source"], state_only["frames"]) == (0.0, "simulator", 0)
    r = client.get("/api/trials/it0001-g000-c000-k1-aaaa02/frames/0.jpg", headers=AUTH)
    assert r.status_code == 404 and "state-only" in r.json()["detail"]


def test_replay_refuses_junk_ids_unknown_trials_and_files_outside_the_store(replay_panel, tmp_path):
    run_dir, client = replay_panel
    assert client.get("/api/trials/it0001-x", headers=AUTH).json()["detail"] == "the trainer has stored no trials yet"
    store_trial(run_dir, "it0001-g000-c000-k0-aaaa01", 1.0, "operator", frames=2)
    # a stored trial outside the store, and a link to it planted inside
    outside = store_trial(tmp_path / "elsewhere", "escape", 1.0, "operator", frames=2)
    (run_dir / "trials" / "iter_000001" / "000009-escape.trial").symlink_to(outside)
    r = client.get("/api/trials/escape", headers=AUTH)
    assert (
        r.status_code == 409
        and r.json()["error"] == "trial_damaged"
        and "outside the trial store" in r.json()["detail"]
    )
    assert client.get("/api/trials/escape/frames/0.jpg", headers=AUTH).status_code == 409
    # a path in the id: no route takes it (the id is one path segment)
    for traversal in (
        "..%2F..%2Felsewhere%2Ftrials%2Fiter_000001%2F000000-escape",
        "..%2F..",
        "iter_000001%2F000000-x",
    ):
        for path in (f"/api/trials/{traversal}", f"/api/trials/{traversal}/frames/0.jpg"):
            r = client.get(path, headers=AUTH)
            assert r.status_code == 404 and r.json()["error"] == "not_found", (path, r.text)
    # anything but letters, digits, '_' and '-' (at most 128) is refused before the store is looked at
    for junk in (
        "%2E%2E",
        ".hidden",
        "-it0001",
        "it0001-g000-c000-k0-aaaa01.trial",
        "it0001%20k0",
        "it%00",
        "*",
        "a" * 129,
    ):
        for path in (f"/api/trials/{junk}", f"/api/trials/{junk}/frames/0.jpg"):
            r = client.get(path, headers=AUTH)
            assert r.status_code == 422 and r.json()["error"] == "malformed", (path, r.text)
    # the id must name the whole trial, not the tail of another one's
    for unknown in ("aaaa01", "k0-aaaa01", "it0009-g000-c000-k0-ffffff"):
        r = client.get(f"/api/trials/{unknown}", headers=AUTH)
        assert r.status_code == 404 and "not in the trial store" in r.json()["detail"], unknown
    assert client.get("/api/trials/it0001-g000-c000-k0-aaaa01/frames/-1.jpg", headers=AUTH).status_code == 422


def test_damaged_trial_file_is_replayed_from_its_replica_or_refused_with_the_reason(replay_panel):
    run_dir, client = replay_panel
    store = TrialStore(run_dir / "trials")
    paths = [store_trial(run_dir, f"it0001-g000-c000-k{k}-aaaa0{k}", 0.0, "classifier", frames=3) for k in (0, 1)]
    intact = [path.read_bytes() for path in paths]
    for path, data in zip(paths, intact):
        path.write_bytes(data[:-10])  # truncated
    r = client.get("/api/trials/it0001-g000-c000-k0-aaaa00", headers=AUTH)  # its replica holds it
    assert r.status_code == 200 and r.json()["reward_source"] == "classifier"
    store.replica(paths[1]).write_bytes(intact[1].replace(b"classifier", b"Classifier"))  # altered
    url = "/api/trials/it0001-g000-c000-k1-aaaa01"
    for damaged in (url, f"{url}/frames/0.jpg"):
        r = client.get(damaged, headers=AUTH)
        assert r.status_code == 409 and r.json()["error"] == "trial_damaged", r.text
        assert "checksum mismatch" in r.json()["detail"], r.text
    # read-only: the panel sets nothing aside and rebuilds nothing (the trainer does, on load)
    assert paths[0].read_bytes() == intact[0][:-10] and not list(store.root.rglob("*.corrupt"))
    # a whole file under another trial's name
    paths[0].with_name("000002-it0001-g000-c000-k2-aaaa02.trial").write_bytes(intact[0])
    r = client.get("/api/trials/it0001-g000-c000-k2-aaaa02", headers=AUTH)
    assert r.status_code == 409 and "holds 'it0001-g000-c000-k0-aaaa00'" in r.json()["detail"], r.text
