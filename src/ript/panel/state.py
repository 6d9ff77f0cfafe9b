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
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ript.core.trial_identity import TrialIdentity

OUTCOMES = ("success", "failure")
STORED = re.compile(r"^stored (\S+) \(reward ([-+0-9.eE]+)\)")
"""The trainer's status message once a trial is on disk (interactive.py's verdict)."""
log = logging.getLogger("ript.panel")


def _iteration_of(trial_id: str) -> int:
    """it0003-g001-... -> 3 (the trainer's trial ids), 0 when the id says nothing."""
    match = re.match(r"it(\d+)-", trial_id)
    return int(match.group(1)) if match else 0


class PanelError(Exception):
    """A request the panel refuses; `status` is the HTTP status the app answers with, `error` the
    answer's error name ('': the status's usual one)."""

    def __init__(self, status: int, message: str, error: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error


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
    run_dir: str = ""
    """The trainer's run folder, whose `ript report` the panel links to ('': no report)."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed to call the API from a browser; empty: none (same origin only)."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names (besides IP literals, localhost and this machine's names) the panel answers to;
    any other Host header is refused (DNS rebinding)."""

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
    """held (undo possible) -> published -> stored (the trainer stored this outcome) or overridden
    (it stored another judge's); or undone; or lost (held when the panel stopped)."""


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
        self.trial: TrialIdentity | None = None
        self.trial_closed = ""
        """Why the active trial takes no mark ('' while it does): marked, aborted, judged."""
        self.suggestion: dict[str, tuple[bool, str, float]] = {}
        """trial_id -> (success, judge, confidence) from the simulator's check or the success
        classifier, shown for the operator to accept or override."""
        self.trainer: dict[str, Any] = {"state": "unknown", "message": "no status from the trainer yet"}
        self.marks: list[Mark] = []
        self.trials: dict[str, TrialIdentity] = {}
        """Every trial this panel has seen start (TrialStart, or adopted from the trainer's status)."""
        self.instruction = ""
        """The latest instruction the trainer latched (for a trial adopted from its status)."""
        self.outcomes: dict[str, tuple[bool, int, str]] = {}
        """trial_id -> (success, iteration, context_id) for each trial the trainer reported stored."""
        self.frames: dict[str, Frame] = {}
        self.path = Path(config.marks_file)
        self._load()

    # ---- journal -------------------------------------------------------------------------------
    def _append(self, event: str, **fields: Any) -> None:
        """One JSON line, fsynced before the caller goes on. A line a crash cut short is ended with
        a newline before the next is written, so it costs only itself (and is skipped on load)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"event": event, "time": self.clock(), **fields}) + "\n"
        with open(self.path, "a+b") as f:
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
            f.write(line.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())

    def _load(self) -> None:
        """Rebuild marks and trainer-confirmed outcomes from the journal; lines that are torn, not
        JSON objects, or of an unexpected shape are skipped with a warning, never fatal."""
        if not self.path.exists():
            return
        by_id: dict[str, Mark] = {}
        skipped = 0
        for line in self.path.read_bytes().decode("utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                event = record["event"]
                if event == "mark":
                    fields = {k: record[k] for k in Mark.__dataclass_fields__ if k in record}
                    mark = Mark(**fields)
                    if not isinstance(mark.mark_id, str) or not isinstance(mark.trial_id, str):
                        raise TypeError("mark_id and trial_id must be strings")
                    by_id[mark.mark_id] = mark
                elif event == "outcome":
                    self._record_outcome(
                        str(record["trial_id"]),
                        bool(record["success"]),
                        int(record.get("iteration", 0)),
                        str(record.get("context_id", "")),
                        journal=False,
                    )
                elif record.get("mark_id") in by_id:
                    by_id[record["mark_id"]].status = {
                        "undo": "undone",
                        "published": "published",
                        "stored": "stored",
                        "overridden": "overridden",
                    }.get(event, "held")
            except (ValueError, KeyError, TypeError, AttributeError):
                skipped += 1  # torn by a crash, or not written by this panel
        if skipped:
            log.warning("%s: skipped %d unreadable journal line(s)", self.path, skipped)
        for mark in by_id.values():
            if mark.status == "held":
                mark.status = "lost"  # never published before the restart; its trial is gone
            elif mark.status == "stored":  # journals without outcome lines: the trainer stored this mark
                self._record_outcome(
                    mark.trial_id, bool(mark.success), int(mark.iteration), str(mark.context_id), journal=False
                )
        self.marks = list(by_id.values())

    # ---- what the adapter hears ------------------------------------------------------------------
    def on_trial_start(self, trial: TrialIdentity) -> None:
        with self._lock:
            self.trial, self.trial_closed = trial, ""
            self.trials[trial.trial_id] = trial

    def on_instruction(self, instruction: str) -> None:
        with self._lock:
            self.instruction = instruction

    def on_trial_aborted(self, trial_id: str) -> None:
        with self._lock:
            if self.trial and self.trial.trial_id == trial_id and not self.trial_closed:
                self.trial_closed = "aborted"

    def on_status(self, status: dict[str, Any]) -> None:
        """The trainer's status: what it stored (the only outcomes the history shows), and the
        trial it is collecting — adopted when its TrialStart never reached this panel (started
        late, restarted mid-trial), so no trial is ever unmarkable here."""
        with self._lock:
            self.trainer = status
            stored = STORED.match(str(status.get("message", "")))
            if stored:
                trial_id, success = stored.group(1), float(stored.group(2)) > 0.5
                known = self.trials.get(trial_id)
                iteration = known.iteration if known else _iteration_of(trial_id)
                self._record_outcome(trial_id, success, iteration, known.context_id if known else "")
                for mark in self.marks:
                    if mark.trial_id == trial_id and mark.status == "published":
                        mark.status = "stored" if mark.success == success else "overridden"
                        self._append(mark.status, mark_id=mark.mark_id)
            trial_id = str(status.get("trial_id", ""))
            if status.get("state") == "collecting" and trial_id and trial_id not in self.trials:
                self.on_trial_start(
                    TrialIdentity(
                        trial_id,
                        str(status.get("context_id", "")),
                        int(status.get("iteration", 0)),
                        int(status.get("trial_index", 0)),
                        int(status.get("group_size", 0)),
                        self.instruction,
                    )
                )
                log.warning("trial %s recovered from the trainer's status (its TrialStart was missed)", trial_id)

    def _record_outcome(
        self, trial_id: str, success: bool, iteration: int, context_id: str, journal: bool = True
    ) -> None:
        if trial_id in self.outcomes:
            return
        self.outcomes[trial_id] = (success, iteration, context_id)
        if journal:
            self._append("outcome", trial_id=trial_id, success=success, iteration=iteration, context_id=context_id)

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
                accept = (
                    self.config.auto_accept if source == "simulator" else confidence >= self.config.classifier_threshold
                )
                if accept and active and not self.trial_closed:
                    # a learned judge can be wrong: its mark waits out the undo window like the operator's
                    return self.mark(trial_id, bool(success), auto=True, hold=source == "classifier")
                return None
            # another judge decided for the active trial and the trainer counts it: no mark for it
            # here. Its history entry comes from the trainer's "stored" status, like every other:
            # a reward for an unknown, stale or forged trial never reaches the panel's history.
            if active and not self.trial_closed:
                self.trial_closed = f"judged by {source}"
            return None

    def set_frame(self, camera: str, pixels: np.ndarray) -> None:
        with self._lock:
            previous = self.frames.get(camera)
            self.frames[camera] = Frame(pixels, previous.seq + 1 if previous else 1)

    # ---- what the operator asks ------------------------------------------------------------------
    def _new_mark(self, trial_id: str, success: bool, source: str, auto: bool, status: str, hold: bool = False) -> Mark:
        trial = self.trial if self.trial and self.trial.trial_id == trial_id else None
        now = self.clock()
        mark = Mark(
            secrets.token_hex(6),
            trial_id,
            success,
            source,
            trial.iteration if trial else 0,
            trial.context_id if trial else "",
            now,
            auto,
            now + self.config.undo_window_s if hold else now,
            status,
        )
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
        """Success rate per iteration and outcomes per context, over the trials the trainer stored
        (whoever judged them): the panel's plot agrees with the trainer's metrics."""
        with self._lock:
            counted = list(self.outcomes.items())
        per_iteration: dict[int, list[bool]] = {}
        per_context: dict[str, list[tuple[str, bool]]] = {}
        for trial_id, (success, iteration, context_id) in counted:
            per_iteration.setdefault(iteration, []).append(success)
            per_context.setdefault(context_id or "?", []).append((trial_id, success))
        return {
            "iterations": [
                {"iteration": it, "trials": len(v), "success_rate": sum(v) / len(v)}
                for it, v in sorted(per_iteration.items())
            ],
            "contexts": [
                {"context_id": c, "outcomes": [ok for _, ok in v], "trial_ids": [t for t, _ in v]}
                for c, v in sorted(per_context.items())
            ],
        }


def flush_due(state: PanelState, publish: Callable[[Mark], None]) -> int:
    """Publish every due mark, journalling each after it went out. Returns how many."""
    marks = state.due()
    for mark in marks:
        publish(mark)
        state.published(mark)
    return len(marks)
