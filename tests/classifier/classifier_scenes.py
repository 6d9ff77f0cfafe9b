"""Synthetic table-top frames for classifier tests: a plate (ring) near the centre and a bowl (red
disc) that is either on the plate (success) or somewhere else on the table (failure)."""

from __future__ import annotations

import numpy as np


def scene(success: bool, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    image = np.full((size, size, 3), 110, np.uint8) + rng.integers(0, 25, (size, size, 1), dtype=np.uint8)
    plate = np.array([size / 2, size / 2]) + rng.uniform(-4, 4, 2)
    ring = np.abs(np.hypot(yy - plate[0], xx - plate[1]) - size * 0.16) < 1.8
    image[ring] = (235, 235, 235)
    if success:
        bowl = plate + rng.uniform(-2, 2, 2)
    else:  # anywhere on the table at least a plate's width away
        while True:
            bowl = rng.uniform(size * 0.12, size * 0.88, 2)
            if np.hypot(*(bowl - plate)) > size * 0.3:
                break
    image[np.hypot(yy - bowl[0], xx - bowl[1]) < size * 0.09] = (200, 40, 40)
    return image


def dataset(n_trials: int, seed: int = 0, frames_per_trial: int = 2, size: int = 64):
    """images, labels, groups, final: each trial ends on its outcome frame after failure frames."""
    rng = np.random.default_rng(seed)
    images, labels, groups, final = [], [], [], []
    for trial in range(n_trials):
        success = bool(trial % 2)
        for k in range(frames_per_trial):
            last = k == frames_per_trial - 1
            label = success and last
            images.append(scene(label, rng, size))
            labels.append(int(label))
            groups.append(f"trial{trial:03d}")
            final.append(last)
    return np.stack(images), np.array(labels), np.array(groups), np.array(final)
