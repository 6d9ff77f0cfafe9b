"""The operator panel's web app: one page, a small JSON API, JPEG camera frames.

Every API request needs the access token (`Authorization: Bearer <token>`), reads included: the
camera frames and the trial state are not for any page a browser on the robot's machine happens to
open. Requests whose Host is not this machine (a DNS-rebinding page) or whose Origin is another site
are refused before anything runs. The page, its static files, `/health` and `/openapi.json` are
open; there is no interactive `/docs` (it would load its scripts from a CDN). The run's report
(`ript report` of the trainer's run folder, made when asked) is reached through a one-visit link
that `POST /api/report` hands out, so the token never travels in a URL. Errors are JSON, never
tracebacks: 401 missing/bad token, 403 foreign Host or Origin, 404 unknown, 409 no active trial /
already marked / refused by the trainer or the robot bridge, 422 malformed, 503 the trainer or the
robot bridge did not answer.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import time
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlsplit

import cv2
from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ript.core.trial_identity import TrialIdentity
from ript.core.trial_store import TRIAL_ID_PATTERN
from ript.panel.replay import ReplayCache
from ript.panel.state import Mark, PanelError, PanelState, flush_due

STATIC_DIR = Path(__file__).with_name("static")
log = logging.getLogger("ript.panel")
CAMERA_NAME = r"^[A-Za-z0-9_]{1,40}$"
TrialId = Field(min_length=1, max_length=200, pattern=r"^[\w\-./:]+$")


class PanelActions(Protocol):
    """What the app asks of ROS (the node implements it; tests may stand in)."""

    def publish(self, mark: Mark) -> None: ...
    def start_trial(self) -> tuple[bool, str, str]: ...
    def abort_trial(self, trial_id: str, reason: str) -> tuple[bool, str]: ...
    def robot_command(self, command: RobotCommand) -> tuple[bool, str]: ...


RobotCommand = Literal["estop", "release", "home"]
"""The Franka bridge's robot/<command> services (std_srvs/Trigger)."""


class TrainerUnavailable(Exception):
    """A service call to the trainer got no answer."""


class RobotUnavailable(Exception):
    """A service call to the robot bridge got no answer."""


# ---- request / response models ---------------------------------------------------------------
class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MarkRequest(_Request):
    trial_id: str = TrialId
    outcome: Literal["success", "failure"]


class TrialRequest(_Request):
    trial_id: str = TrialId


class AbortRequest(_Request):
    trial_id: str = TrialId
    reason: str = Field("operator: unsafe", max_length=500)


class MarkOut(BaseModel):
    mark_id: str
    trial_id: str
    success: bool
    source: str
    status: str
    auto: bool
    publish_at: float


class ActionOut(BaseModel):
    accepted: bool
    message: str
    trial_id: str = ""


class ReportOut(BaseModel):
    url: str
    """Where the run's report is, for one visit within REPORT_TICKET_S."""


REPORT_TICKET_S = 60.0
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'"
"""The report page is self-contained: its own inline style and data: images, nothing else, no script."""


class ErrorOut(BaseModel):
    error: str
    detail: object = None


class StateOut(BaseModel):
    trial: TrialIdentity | None
    trial_closed: str
    suggestion: bool | None
    suggestion_source: str | None
    suggestion_confidence: float | None
    trainer: dict
    last_mark: MarkOut | None
    undo_left_s: float
    cameras: dict[str, int]
    auto_accept: bool
    reward_mode: str


class IterationOut(BaseModel):
    iteration: int
    trials: int
    success_rate: float


class ContextOut(BaseModel):
    context_id: str
    outcomes: list[bool]
    trial_ids: list[str]
    """The trial of each outcome, in the same order (to replay it)."""


class HistoryOut(BaseModel):
    iterations: list[IterationOut]
    contexts: list[ContextOut]


class TrialOut(BaseModel):
    trial_id: str
    iteration: int
    context_id: str
    reward: float
    reward_source: str
    """Who judged it: operator, simulator or classifier."""
    weights_version: int
    num_steps: int
    frames: int
    """Camera frames per camera, one per policy query; 0 for a state-only trial."""
    cameras: list[str]


ERRORS = {401: {"model": ErrorOut}, 409: {"model": ErrorOut}, 422: {"model": ErrorOut}}
TRIAL_ERRORS = {**ERRORS, 404: {"model": ErrorOut}}


def _error(status: int, error: str, detail: object = None) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"error": error, "detail": jsonable_encoder(detail)},
        headers={"WWW-Authenticate": "Bearer"} if status == 401 else None,
    )


def _jpeg(pixels) -> bytes:
    """RGB uint8 [H, W, 3] -> JPEG bytes."""
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return jpeg.tobytes() if ok else b""


def host_allowed(host: str, allowed: set[str]) -> bool:
    """Host header check against DNS rebinding: an IP literal, or a name of this machine / configured."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]").lower()
    if not name:
        return False
    try:
        ipaddress.ip_address(name)
        return True  # a rebinding page reaches us under its own domain name, never an IP literal
    except ValueError:
        return name in allowed


def origin_allowed(origin: str | None, host: str, cors_origins: tuple[str, ...]) -> bool:
    """A state change from a browser page: its Origin must be this panel itself (or configured).
    No Origin header: not a browser page (curl, a script, the tests)."""
    if origin is None:
        return True
    if origin in cors_origins:
        return True
    parsed = urlsplit(origin)
    return parsed.scheme in ("http", "https") and parsed.netloc.lower() == host.lower()


def _mark_out(mark: Mark) -> MarkOut:
    return MarkOut(
        mark_id=mark.mark_id,
        trial_id=mark.trial_id,
        success=mark.success,
        source=mark.source,
        status=mark.status,
        auto=mark.auto,
        publish_at=mark.publish_at,
    )


def create_app(state: PanelState, actions: PanelActions) -> FastAPI:
    app = FastAPI(title="ript operator panel", version="1", description=__doc__, docs_url=None, redoc_url=None)
    bearer = HTTPBearer(auto_error=False)
    allowed_hosts = {
        "localhost",
        socket.gethostname().lower(),
        socket.getfqdn().lower(),
        state.config.host.lower(),
        *(h.lower() for h in state.config.allowed_hosts),
    }

    def require_token(credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> None:
        given = credentials.credentials if credentials else ""
        # constant-time comparison: the token must not leak through response timing
        if not given or not secrets.compare_digest(given.encode(), state.config.token.encode()):
            raise PanelError(401, "missing or bad access token")

    authorized = [Depends(require_token)]

    @app.exception_handler(PanelError)
    async def on_panel_error(request: Request, exc: PanelError):
        usual = {401: "unauthorized", 404: "not_found", 409: "conflict"}.get(exc.status, "error")
        return _error(exc.status, exc.error or usual, exc.message)

    @app.exception_handler(RequestValidationError)
    async def on_malformed(request: Request, exc: RequestValidationError):
        errors = [{k: e.get(k) for k in ("loc", "msg", "type")} for e in exc.errors()]
        return _error(422, "malformed", errors)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        return _error(
            exc.status_code, {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error"), exc.detail
        )

    @app.exception_handler(TrainerUnavailable)
    async def on_unavailable(request: Request, exc: TrainerUnavailable):
        return _error(503, "trainer_unavailable", str(exc))

    @app.exception_handler(RobotUnavailable)
    async def on_robot_unavailable(request: Request, exc: RobotUnavailable):
        return _error(503, "robot_unavailable", str(exc))

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception):
        log.exception("panel: unhandled error on %s", request.url.path)
        return _error(500, "internal", "internal error (see the panel's log)")

    @app.middleware("http")
    async def headers(request: Request, call_next):
        host = request.headers.get("host", "")
        if not host_allowed(host, allowed_hosts):
            response = _error(
                403,
                "forbidden_host",
                f"Host {host[:100]!r} is not this panel's; add it to "
                "allowed_hosts if the operator's screen uses that name",
            )
        elif request.method not in ("GET", "HEAD", "OPTIONS") and not origin_allowed(
            request.headers.get("origin"), host, state.config.cors_origins
        ):
            response = _error(403, "forbidden_origin", "requests from another site's page are refused")
        else:
            response = await call_next(request)
        # nothing external is ever loaded: forbid it, and forbid framing (clickjacking the buttons)
        response.headers.setdefault(
            "Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    if state.config.cors_origins:  # closed by default: no CORS headers, so only same-origin pages call in
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(state.config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    report_tickets: dict[str, float] = {}
    """One-visit tickets for the report page (ticket -> expiry): a browser cannot send the token's
    header on a navigation, and the token must not travel in a URL."""

    @app.post("/api/report", response_model=ReportOut, dependencies=authorized, responses=ERRORS)
    def report_ticket() -> dict:
        if not state.config.run_dir:
            raise PanelError(404, "this panel was started without the trainer's run_dir")
        now = time.monotonic()
        for ticket in [t for t, expiry in report_tickets.items() if expiry < now]:
            del report_tickets[ticket]
        ticket = secrets.token_urlsafe(24)
        report_tickets[ticket] = now + REPORT_TICKET_S
        return {"url": f"/report/{ticket}"}

    @app.get("/report/{ticket}", include_in_schema=False)
    def report(ticket: str = PathParam(max_length=64)) -> Response:
        """`ript report` of the trainer's run folder, made now (the live version of the run's page)."""
        from ript.core.report import write_report

        expiry = report_tickets.pop(ticket, None)
        if expiry is None or expiry < time.monotonic():
            raise PanelError(404, "no such report link, or it was used or expired: ask the panel for a new one")
        try:
            page = write_report(state.config.run_dir, Path(state.config.run_dir) / "panel" / "report")
        except SystemExit as exc:  # the run folder has nothing to report yet
            raise PanelError(409, str(exc)) from None
        return Response(page.read_text(), media_type="text/html", headers={"Content-Security-Policy": REPORT_CSP})

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "trainer_state": state.trainer.get("state", "unknown")}

    @app.get("/api/state", response_model=StateOut, dependencies=authorized, responses=ERRORS)
    def get_state() -> dict:
        return state.snapshot()

    @app.get("/api/history", response_model=HistoryOut, dependencies=authorized, responses=ERRORS)
    def get_history() -> dict:
        return state.history()

    @app.get(
        "/api/camera/{camera}.jpg",
        responses={200: {"content": {"image/jpeg": {}}}, 404: {"model": ErrorOut}, 401: {"model": ErrorOut}},
        response_class=Response,
        dependencies=authorized,
    )
    def get_camera(camera: str = PathParam(pattern=CAMERA_NAME)) -> Response:
        frame = state.frame(camera)
        if frame is None:
            return _error(404, "not_found", f"no frame from camera {camera!r} yet")
        return Response(
            _jpeg(frame.pixels),
            media_type="image/jpeg",
            headers={"Cache-Control": "no-store", "X-Frame-Seq": str(frame.seq)},
        )

    replays = ReplayCache(Path(state.config.run_dir) / "trials") if state.config.run_dir else None

    def replay(trial_id: str):
        if replays is None:
            raise PanelError(404, "this panel was started without the trainer's run_dir: no stored trials to replay")
        return replays.get(trial_id)

    @app.get("/api/trials/{trial_id}", response_model=TrialOut, dependencies=authorized, responses=TRIAL_ERRORS)
    def get_trial(trial_id: str = PathParam(pattern=TRIAL_ID_PATTERN)) -> TrialOut:
        """A stored trial to replay: its context, reward, who judged it and how many frames it has."""
        trial = replay(trial_id)
        return TrialOut(
            trial_id=trial.trial_id,
            iteration=trial.iteration,
            context_id=trial.context_id,
            reward=trial.reward,
            reward_source=trial.reward_source,
            weights_version=trial.weights_version,
            num_steps=trial.num_steps,
            frames=trial.frames,
            cameras=sorted(trial.cameras),
        )

    @app.get(
        "/api/trials/{trial_id}/frames/{index}.jpg",
        responses={200: {"content": {"image/jpeg": {}}}, **TRIAL_ERRORS},
        response_class=Response,
        dependencies=authorized,
    )
    def get_trial_frame(
        trial_id: str = PathParam(pattern=TRIAL_ID_PATTERN),
        index: int = PathParam(ge=0, le=1_000_000),
        camera: str = Query("", pattern=rf"^$|{CAMERA_NAME}", description="'': the trial's first camera"),
    ) -> Response:
        """Frame `index` of a stored trial as JPEG (frames never change: the browser may keep them)."""
        trial = replay(trial_id)
        name = camera or min(trial.cameras, default="")
        if name not in trial.cameras:
            raise PanelError(404, f"trial {trial_id} has no frames from camera {name!r} (a state-only trial?)")
        if index >= trial.frames:
            raise PanelError(404, f"trial {trial_id} has {trial.frames} frames, no frame {index}")
        return Response(
            _jpeg(trial.cameras[name][index]),
            media_type="image/jpeg",
            headers={"Cache-Control": "private, max-age=600"},
        )

    @app.post("/api/mark", response_model=MarkOut, dependencies=authorized, responses=ERRORS)
    def post_mark(body: MarkRequest) -> MarkOut:
        mark = state.mark(body.trial_id, body.outcome == "success")
        flush_due(state, actions.publish)  # publishes at once when there is no undo window
        return _mark_out(mark)

    @app.post("/api/accept_suggestion", response_model=MarkOut, dependencies=authorized, responses=ERRORS)
    def post_accept(body: TrialRequest) -> MarkOut:
        suggestion = state.snapshot()["suggestion"]
        if suggestion is None:
            raise PanelError(409, f"no suggestion (simulator or classifier) for {body.trial_id!r}")
        mark = state.mark(body.trial_id, suggestion)
        flush_due(state, actions.publish)
        return _mark_out(mark)

    @app.post("/api/undo", response_model=MarkOut, dependencies=authorized, responses=ERRORS)
    def post_undo() -> MarkOut:
        return _mark_out(state.undo())

    @app.post("/api/abort", response_model=ActionOut, dependencies=authorized, responses=ERRORS)
    def post_abort(body: AbortRequest) -> ActionOut:
        state.check_abortable(body.trial_id)
        accepted, message = actions.abort_trial(body.trial_id, body.reason)
        if not accepted:
            raise PanelError(409, message)
        state.on_trial_aborted(body.trial_id)
        return ActionOut(accepted=True, message=message, trial_id=body.trial_id)

    @app.post("/api/start_next", response_model=ActionOut, dependencies=authorized, responses=ERRORS)
    def post_start_next() -> ActionOut:
        accepted, trial_id, message = actions.start_trial()
        if not accepted:
            raise PanelError(409, message)
        return ActionOut(accepted=True, message=message, trial_id=trial_id)

    def robot(command: RobotCommand) -> ActionOut:
        accepted, message = actions.robot_command(command)
        if not accepted:
            raise PanelError(409, message)
        return ActionOut(accepted=True, message=message)

    robot_errors = {**ERRORS, 503: {"model": ErrorOut}}

    @app.post("/api/robot/estop", response_model=ActionOut, dependencies=authorized, responses=robot_errors)
    def post_estop() -> ActionOut:
        """Latch the robot bridge's e-stop: it stops commanding the robot at once."""
        return robot("estop")

    @app.post("/api/robot/release", response_model=ActionOut, dependencies=authorized, responses=robot_errors)
    def post_release() -> ActionOut:
        """Clear a latched e-stop."""
        return robot("release")

    @app.post("/api/robot/home", response_model=ActionOut, dependencies=authorized, responses=robot_errors)
    def post_home() -> ActionOut:
        """Move the robot to its home pose in bounded steps (refused while e-stopped or stale)."""
        return robot("home")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
