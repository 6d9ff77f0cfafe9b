"""The operator panel's model: the active trial, the operator's marks, the undo window, history.

No rclpy and no web framework here: the ROS adapter (`panel/node.py`) feeds it what it hears and
publishes what it hands out; the FastAPI app (`panel/app.py`) reads it and asks it to mark.

A mark's life:  mark() -> appended to the JSONL journal and fsynced (persisted)
                -> held for `undo_window_s` (undo() drops it, journalled too)
                -> due() hands it to the adapter, which publishes Reward on /reward
                -> published() journals that -> the trainer's status "stored <trial_id>" acks it.
Holding the mark before publishing is what makes undo possible: once the trainer has a reward it
rejects a conflicting one, so a mark cannot be taken back after it left the panel.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

OUTCOMES = ("success", "failure")


class PanelError(Exception):
    """A request the panel refuses; `status` is the HTTP status the app answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class PanelConfig:
    host: str = "127.0.0.1"
    """Bind address; localhost unless the operator's screen is on another machine."""
    port: int = 8000
    """0: any free port (printed at start)."""
    token: str = ""
    """Required on every state-changing request; '' or 'auto': a random one, printed at start."""
    auto_accept: bool = False
    """Forward the simulator's success check as the operator's mark (unattended sim runs)."""
    reward_mode: str = "any"
    """'operator': simulator rewards are only suggestions (the trainer ignores them);
    'any': a reward from another judge closes the trial in the panel too."""
    classifier_threshold: float = 0.9
    """With reward_mode 'operator': a success classifier's verdict becomes the mark when its
    confidence reaches this (held for the undo window like any mark, so the operator can still
    override it); below it the operator is asked. Above 1: never."""
    undo_window_s: float = 3.0
    """A mark is held this long before it goes out on /reward; 0 publishes at once."""
    marks_file: str = "runs/ros/panel/marks.jsonl"
    cors_origins: tuple[str, ...] = ()
    """Origins allowed to call the API from a browser; empty: none (same origin only)."""

    def __post_init__(self) -> None:
        if self.reward_mode not in ("any", "operator"):
            raise ValueError(f"reward_mode must be 'any' or 'operator', got {self.reward_mode!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.undo_window_s < 0:
            raise ValueError(f"undo_window_s must be >= 0, got {self.undo_window_s}")
        if self.token in ("", "auto"):
            self.token = secrets.token_urlsafe(18)


@dataclass
class ActiveTrial:
    trial_id: str
    context_id: str
    iteration: int
    trial_index: int
    group_size: int
    instruction: str


@dataclass
class Mark:
    mark_id: str
    trial_id: str
    success: bool
    source: str
    """'operator' (a person or auto-accept through the panel), or the judge whose reward was heard."""
    iteration: int
    context_id: str
    marked_at: float
    auto: bool = False
    publish_at: float = 0.0
    status: str = "held"
    """held (undo possible) -> published -> stored (the trainer acknowledged); or undone."""


@dataclass
class Frame:
    pixels: np.ndarray
    """H x W x 3 uint8, RGB."""
    seq: int
    received: float = field(default_factory=time.time)


class PanelState:
    """Thread-safe: the ROS thread and the web server's threads both call in."""

    def __init__(self, config: PanelConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.RLock()
        self.trial: ActiveTrial | None = None
        self.trial_closed = ""
        """Why the active trial takes no mark ('' while it does): marked, aborted, judged."""
        self.suggestion: dict[str, tuple[bool, str, float]] = {}
        """trial_id -> (success, judge, confidence) from the simulator's check or the success
        classifier, shown for the operator to accept or override."""
        self.trainer: dict[str, Any] = {"state": "unknown", "message": "no status from the trainer yet"}
        self.marks: list[Mark] = []
        self.frames: dict[str, Frame] = {}
        self.path = Path(config.marks_file)
        self._load()

    # ---- journal -------------------------------------------------------------------------------
    def _append(self, event: str, **fields: Any) -> None:
        """One JSON line, fsynced before the caller goes on (crash-safe: a torn last line is skipped)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"event": event, "time": self.clock(), **fields}) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def _load(self) -> None:
        if not self.path.exists():
            return
        by_id: dict[str, Mark] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # the line a crash cut short
            if record.get("event") == "mark":
                fields = {k: record[k] for k in Mark.__dataclass_fields__ if k in record}
                by_id[record["mark_id"]] = Mark(**fields)
            elif record.get("mark_id") in by_id:
                by_id[record["mark_id"]].status = {"undo": "undone", "published": "published",
                                                   "stored": "stored"}.get(record["event"], "held")
        for mark in by_id.values():
            if mark.status == "held":
                mark.status = "lost"  # never published before the restart; its trial is gone
        self.marks = list(by_id.values())

    # ---- what the adapter hears ------------------------------------------------------------------
    def on_trial_start(self, trial: ActiveTrial) -> None:
        with self._lock:
            self.trial, self.trial_closed = trial, ""

    def on_trial_aborted(self, trial_id: str) -> None:
        with self._lock:
            if self.trial and self.trial.trial_id == trial_id and not self.trial_closed:
                self.trial_closed = "aborted"

    def on_status(self, status: dict[str, Any]) -> None:
        with self._lock:
            self.trainer = status
            message = str(status.get("message", ""))
            for mark in self.marks:
                if mark.status == "published" and message.startswith(f"stored {mark.trial_id}"):
                    mark.status = "stored"
                    self._append("stored", mark_id=mark.mark_id)

    def on_reward(self, trial_id: str, success: bool, source: str, confidence: float = 1.0) -> Mark | None:
        """A reward heard on /reward. Returns a mark to publish now when a suggestion is accepted
        automatically (the simulator's with auto_accept, the classifier's at or above
        classifier_threshold); our own rewards (source operator) come back here and are ignored."""
        with self._lock:
            if source == "operator":
                return None
            active = self.trial is not None and self.trial.trial_id == trial_id
            if source in ("simulator", "classifier") and self.config.reward_mode == "operator":
                self.suggestion[trial_id] = (bool(success), source, float(confidence))
                accept = (self.config.auto_accept if source == "simulator"
                          else confidence >= self.config.classifier_threshold)
                if accept and active and not self.trial_closed:
                    # a learned judge can be wrong: its mark waits out the undo window like the operator's
                    return self.mark(trial_id, bool(success), auto=True, hold=source == "classifier")
                return None
            # another judge decided and the trainer counts it: history, and no mark for this trial
            if any(m.trial_id == trial_id and m.status != "undone" for m in self.marks):
                return None
            self._new_mark(trial_id, bool(success), source, auto=False, status="published")
            if active:
                self.trial_closed = f"judged by {source}"
            return None

    def set_frame(self, camera: str, pixels: np.ndarray) -> None:
        with self._lock:
            previous = self.frames.get(camera)
            self.frames[camera] = Frame(pixels, previous.seq + 1 if previous else 1)

    # ---- what the operator asks ------------------------------------------------------------------
    def _new_mark(self, trial_id: str, success: bool, source: str, auto: bool, status: str,
                  hold: bool = False) -> Mark:
        trial = self.trial if self.trial and self.trial.trial_id == trial_id else None
        now = self.clock()
        mark = Mark(secrets.token_hex(6), trial_id, success, source, trial.iteration if trial else 0,
                    trial.context_id if trial else "", now, auto,
                    now + self.config.undo_window_s if hold else now, status)
        self._append("mark", **asdict(mark))  # persisted before anything else happens to it
        self.marks.append(mark)
        return mark

    def mark(self, trial_id: str, success: bool, auto: bool = False, hold: bool = True) -> Mark:
        """The operator's mark (auto: a suggestion accepted automatically), held for the undo window
        unless `hold` is False."""
        with self._lock:
            if self.trial is None:
                raise PanelError(409, "no active trial")
            if trial_id != self.trial.trial_id:
                raise PanelError(409, f"trial {trial_id!r} is not the active trial {self.trial.trial_id!r}")
            if self.trial_closed:
                raise PanelError(409, f"trial {trial_id} already {self.trial_closed}")
            mark = self._new_mark(trial_id, success, "operator", auto, "held", hold)
            self.trial_closed = "marked"
            return mark

    def undo(self) -> Mark:
        """Take back the newest mark while it is still held."""
        with self._lock:
            # operator marks, and auto marks that were given an undo window (a classifier's verdict)
            held = [m for m in self.marks if m.status == "held" and (not m.auto or m.publish_at > m.marked_at)]
            if not held:
                raise PanelError(409, "no mark to undo (published marks are final)")
            mark = held[-1]
            if self.clock() >= mark.publish_at:
                raise PanelError(409, "the undo window has passed")
            mark.status = "undone"
            self._append("undo", mark_id=mark.mark_id)
            if self.trial and self.trial.trial_id == mark.trial_id and self.trial_closed == "marked":
                self.trial_closed = ""
            return mark

    def check_abortable(self, trial_id: str) -> None:
        with self._lock:
            if self.trial is None or self.trial.trial_id != trial_id:
                raise PanelError(409, f"trial {trial_id!r} is not the active trial")
            if self.trial_closed:
                raise PanelError(409, f"trial {trial_id} already {self.trial_closed}")

    # ---- publishing ------------------------------------------------------------------------------
    def due(self) -> list[Mark]:
        """Held marks whose undo window has passed: the adapter publishes them, then calls published()."""
        with self._lock:
            now = self.clock()
            return [m for m in self.marks if m.status == "held" and now >= m.publish_at]

    def published(self, mark: Mark) -> None:
        with self._lock:
            mark.status = "published"
            self._append("published", mark_id=mark.mark_id)

    # ---- what the page shows ---------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            trial = asdict(self.trial) if self.trial else None
            last = self.marks[-1] if self.marks else None
            suggestion = self.suggestion.get(self.trial.trial_id) if self.trial else None
            return {
                "trial": trial,
                "trial_closed": self.trial_closed,
                "suggestion": suggestion[0] if suggestion else None,
                "suggestion_source": suggestion[1] if suggestion else None,
                "suggestion_confidence": suggestion[2] if suggestion else None,
                "trainer": dict(self.trainer),
                "last_mark": asdict(last) if last else None,
                "undo_left_s": max(0.0, last.publish_at - self.clock()) if last and last.status == "held" else 0.0,
                "cameras": {name: frame.seq for name, frame in self.frames.items()},
                "auto_accept": self.config.auto_accept,
                "reward_mode": self.config.reward_mode,
            }

    def frame(self, camera: str) -> Frame | None:
        with self._lock:
            return self.frames.get(camera)

    def history(self) -> dict[str, Any]:
        """Success rate per iteration and outcomes per context, over marks that went out."""
        with self._lock:
            counted = [m for m in self.marks if m.status in ("published", "stored")]
        per_iteration: dict[int, list[bool]] = {}
        per_context: dict[str, list[bool]] = {}
        for m in counted:
            per_iteration.setdefault(m.iteration, []).append(m.success)
            per_context.setdefault(m.context_id or "?", []).append(m.success)
        return {
            "iterations": [{"iteration": it, "trials": len(v), "success_rate": sum(v) / len(v)}
                           for it, v in sorted(per_iteration.items())],
            "contexts": [{"context_id": c, "outcomes": v} for c, v in sorted(per_context.items())],
        }


def flush_due(state: PanelState, publish: Callable[[Mark], None]) -> int:
    """Publish every due mark, journalling each after it went out. Returns how many."""
    marks = state.due()
    for mark in marks:
        publish(mark)
        state.published(mark)
    return len(marks)
