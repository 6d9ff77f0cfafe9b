"""Trial replay: a stored trial's camera frames, reward and judge, for the panel's flip-book.

The trial id arrives in a request, so nothing is built from it unchecked: the trial store accepts
only ids of TRIAL_ID_PATTERN and reads only files that resolve inside the store, read-only (a
damaged file stays where it is, for the trainer to set aside and rebuild). A played trial asks for
each of its frames, so its decoded frames are kept in a small cache and its file is read once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ript.core.constants import OBS_IMAGE_PREFIX
from ript.core.safe_io import CorruptFileError
from ript.core.trial_store import StoredTrial, TrialStore
from ript.panel.state import PanelError


@dataclass(frozen=True)
class Replay:
    trial_id: str
    iteration: int
    context_id: str
    reward: float
    reward_source: str
    """Who judged the trial, as the trainer stored it: operator, simulator, classifier."""
    weights_version: int
    num_steps: int
    cameras: dict[str, np.ndarray]
    """camera name -> uint8 [frames, H, W, 3], upright: the policy's view at each of its queries."""

    @property
    def frames(self) -> int:
        return min((len(pixels) for pixels in self.cameras.values()), default=0)


def replay_of(trial: StoredTrial) -> Replay:
    """The replayable part of a stored trial: RGB frames only (state-only trials have none)."""
    cameras = {}
    for key, tensor in trial.trajectory.obs.items():
        pixels = tensor.numpy()
        if key.startswith(OBS_IMAGE_PREFIX) and pixels.dtype == np.uint8 and pixels.ndim == 4 and pixels.shape[-1] == 3:
            cameras[key.removeprefix(OBS_IMAGE_PREFIX)] = pixels
    return Replay(
        trial.trial_id,
        trial.iteration,
        trial.context_id,
        float(trial.reward),
        trial.reward_source,
        trial.weights_version,
        trial.trajectory.num_steps,
        cameras,
    )


class ReplayCache:
    """Stored trials of one trial store by id, the `size` most recently asked for kept decoded.
    Stored trial files are written once and never change, so a cached trial never goes stale."""

    def __init__(self, root: str | Path, size: int = 4) -> None:
        self.root = Path(root)
        self.size = size
        self._replays: OrderedDict[str, Replay] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, trial_id: str) -> Replay:
        """The trial's replay; PanelError 404 when it is not stored, 409 when its files are damaged."""
        with self._lock:
            if trial_id in self._replays:
                self._replays.move_to_end(trial_id)
                return self._replays[trial_id]
        if not self.root.is_dir():
            raise PanelError(404, "the trainer has stored no trials yet")
        try:
            trial = TrialStore(self.root).read(trial_id)
        except ValueError as exc:
            raise PanelError(404, str(exc)) from None
        except CorruptFileError as exc:
            raise PanelError(
                409, f"stored trial {trial_id} is damaged and cannot be replayed: {exc}", "trial_damaged"
            ) from None
        if trial is None:
            raise PanelError(404, f"trial {trial_id} is not in the trial store (not stored yet, or aborted)")
        replay = replay_of(trial)
        with self._lock:
            self._replays[trial_id] = replay
            while len(self._replays) > self.size:
                self._replays.popitem(last=False)
        return replay
