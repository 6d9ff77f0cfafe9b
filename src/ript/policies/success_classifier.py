"""Success classifier: one camera frame at the end of a trial -> P(success).

The learned alternative to the operator (and what the simulator's success check plays in sim). It
is trained on labelled trial outcomes: frames the operator marked through the panel (the
classifier node stores each marked trial's last frame) or frames from simulated trials labelled by
LIBERO's success check (`ript sim-outcomes`). Examples are `.npz` files with

    images  uint8 [N, H, W, 3]   upright RGB, as the camera topics carry them
    labels  uint8 [N]            1 = success
    groups  str   [N]            trial (or episode) id: held-out splits never cut through a trial
    final   bool  [N]            optional: the frame ends its trial (the rest are earlier frames)

Plain Python + torch, no rclpy: the node (`classifier_node.py`) and the CLI are thin adapters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ript.core.paths import files_under
from ript.core.safe_io import atomic_write, load_verified, save_verified
from ript.policies.encoders import SmallCNN
from ript.policies.sft import random_shift

CHECKPOINT_KIND = "ript-success-classifier"


@dataclass
class ClassifierConfig:
    image_size: int = 96
    """Frames are resized to this square size before the CNN (cheap on a CPU, enough for a scene)."""
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    image_shift: int = 4
    """Random-shift augmentation in pixels: the camera is never mounted twice in the same place."""
    brightness_jitter: float = 0.15
    """Multiplicative brightness augmentation (± this fraction): lighting changes during a day."""
    holdout_fraction: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size < 32 or self.epochs < 1 or self.batch_size < 1 or not 0 <= self.holdout_fraction < 1:
            raise ValueError(f"invalid classifier config: {self}")


# ---- data --------------------------------------------------------------------------------------
@dataclass
class Examples:
    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    final: np.ndarray
    """True where the frame is the one its trial ended on (the trial-level verdict)."""

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> Examples:
        return Examples(self.images[mask], self.labels[mask], self.groups[mask], self.final[mask])


def save_examples(
    path: str | Path,
    images: np.ndarray,
    labels: Iterable[int],
    groups: Iterable[str],
    final: Iterable[bool] | None = None,
) -> Path:
    """Write examples atomically (safe_io.atomic_write): a crash never leaves half a file."""
    images = np.asarray(images, dtype=np.uint8)
    labels = np.asarray(list(labels), dtype=np.uint8)
    groups = np.asarray([str(g) for g in groups])
    final = np.ones(len(labels), bool) if final is None else np.asarray(list(final), dtype=bool)
    if images.ndim != 4 or images.shape[-1] != 3 or not len(images) == len(labels) == len(groups) == len(final):
        raise ValueError(
            f"examples need images [N,H,W,3], labels [N], groups [N]; got {images.shape}, "
            f"{labels.shape}, {groups.shape}"
        )
    atomic_write(path, lambda f: np.savez_compressed(f, images=images, labels=labels, groups=groups, final=final))
    return Path(path)


def load_examples(paths: Iterable[str | Path], image_size: int) -> Examples:
    """Every example under `paths` (files or folders of .npz), resized to image_size."""
    images, labels, groups, final = [], [], [], []
    for file in files_under(paths, ".npz", "example"):
        try:
            with np.load(file, allow_pickle=False) as data:
                file_images, file_labels, file_groups = data["images"], data["labels"], data["groups"]
                final.append(data["final"].astype(bool) if "final" in data else np.ones(len(file_labels), bool))
        except Exception as exc:  # a truncated or foreign file: say which one
            raise ValueError(f"{file}: not a readable example file ({exc})") from exc
        images.append(resize(file_images, image_size))
        labels.append(file_labels.astype(np.uint8))
        groups.append(file_groups.astype(str))
    return Examples(np.concatenate(images), np.concatenate(labels), np.concatenate(groups), np.concatenate(final))


def resize(images: np.ndarray, size: int) -> np.ndarray:
    import cv2

    images = np.asarray(images, dtype=np.uint8)
    if images.shape[1:3] == (size, size):
        return images
    return np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) for image in images])


def split_by_group(groups: np.ndarray, holdout_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of held-out examples: whole trials, a fraction of them, chosen by seed."""
    unique = np.unique(groups)
    rng = np.random.default_rng(seed)
    held = rng.permutation(unique)[: int(round(holdout_fraction * len(unique)))]
    return np.isin(groups, held)


# ---- model -------------------------------------------------------------------------------------
class SuccessClassifier(nn.Module):
    """SmallCNN (the policy's camera encoder) + a linear read-out of the whole feature map: whether
    a bowl is *on* a plate is about where things are, which global pooling would throw away."""

    def __init__(self, image_size: int) -> None:
        super().__init__()
        self.image_size = image_size
        self.encoder = SmallCNN()
        side = math.ceil(image_size / SmallCNN.stride)
        self.head = nn.Sequential(
            nn.Conv2d(SmallCNN.out_channels, 16, 1),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Dropout(0.2),
            nn.Linear(16 * side * side, 1),
        )

    def forward(self, images: Tensor) -> Tensor:
        """uint8 [B, H, W, 3] -> success logits [B]."""
        x = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return self.head(self.encoder(x)).squeeze(-1)

    @torch.no_grad()
    def predict(self, images: np.ndarray) -> np.ndarray:
        """P(success) for upright uint8 frames [B, H, W, 3] of any size."""
        self.eval()
        batch = torch.from_numpy(resize(np.asarray(images), self.image_size))
        return torch.sigmoid(self(batch)).numpy()


def save_classifier(model: SuccessClassifier, config: ClassifierConfig, path: str | Path, report: dict) -> str:
    return save_verified(
        {"kind": CHECKPOINT_KIND, "config": asdict(config), "state_dict": model.state_dict(), "report": report}, path
    )


def load_classifier(path: str | Path) -> tuple[SuccessClassifier, dict]:
    """The model and its training report; CorruptFileError for a damaged file, ValueError for
    another kind of checkpoint."""
    blob = load_verified(path)
    if not isinstance(blob, dict) or blob.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{path}: not a success-classifier checkpoint")
    model = SuccessClassifier(int(blob["config"]["image_size"]))
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model, blob["report"]


# ---- training ----------------------------------------------------------------------------------
def _augment(images: Tensor, config: ClassifierConfig, generator: torch.Generator) -> Tensor:
    if config.image_shift:
        images = random_shift(images, config.image_shift, generator)
    if config.brightness_jitter:
        scale = 1 + config.brightness_jitter * (2 * torch.rand(len(images), 1, 1, 1, generator=generator) - 1)
        images = (images.float() * scale).clamp(0, 255).to(torch.uint8)
    return images


def metrics(probabilities: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, balanced accuracy, confusion counts, and how the confidence threshold trades the
    operator's workload (fraction asked) against the accuracy of what is decided automatically."""
    labels = labels.astype(bool)
    predicted = probabilities >= threshold
    tp, tn = int(np.sum(predicted & labels)), int(np.sum(~predicted & ~labels))
    fp, fn = int(np.sum(predicted & ~labels)), int(np.sum(~predicted & labels))
    recall_pos = tp / max(tp + fn, 1)
    recall_neg = tn / max(tn + fp, 1)
    out = {
        "n": int(len(labels)),
        "positives": int(labels.sum()),
        "accuracy": (tp + tn) / max(len(labels), 1),
        "balanced_accuracy": (recall_pos + recall_neg) / 2,
        "tp": tp,
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "by_confidence": [],
    }
    confidence = np.maximum(probabilities, 1 - probabilities)
    for level in (0.5, 0.8, 0.9, 0.95, 0.99):
        decided = confidence >= level
        correct = predicted[decided] == labels[decided]
        out["by_confidence"].append(
            {
                "threshold": level,
                "decided": float(decided.mean()) if len(labels) else 0.0,
                "accuracy_decided": float(correct.mean()) if decided.any() else float("nan"),
            }
        )
    return out


def train_classifier(
    examples: Examples, config: ClassifierConfig, log: Callable[[dict], None] | None = None, progress: bool = True
) -> tuple[SuccessClassifier, dict]:
    """Train on the examples outside the held-out trials; report metrics on both parts."""
    from tqdm import tqdm

    if len(examples) == 0:
        raise ValueError("no examples to train on")
    torch.manual_seed(config.seed)
    held_out = split_by_group(examples.groups, config.holdout_fraction, config.seed)
    train, test = examples.subset(~held_out), examples.subset(held_out)
    if len(np.unique(train.labels)) < 2:
        raise ValueError(f"training examples must contain successes and failures (labels: {np.unique(train.labels)})")
    model = SuccessClassifier(config.image_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs * steps_per_epoch)
    # Successes and failures are rarely balanced; weight the loss so both count equally.
    positives = float(train.labels.mean())
    pos_weight = torch.tensor((1 - positives) / max(positives, 1e-6))
    images, labels = torch.from_numpy(train.images), torch.from_numpy(train.labels).float()
    generator = torch.Generator().manual_seed(config.seed)
    history = []
    bar = tqdm(range(config.epochs), desc="classifier", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(train), generator=generator)
        total = 0.0
        for start in range(0, len(train), config.batch_size):
            index = order[start : start + config.batch_size]
            logits = model(_augment(images[index], config, generator))
            loss = F.binary_cross_entropy_with_logits(logits, labels[index], pos_weight=pos_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(index)
        record = {"epoch": epoch + 1, "loss": total / len(train)}
        if len(test):
            record["heldout_accuracy"] = metrics(model.predict(test.images), test.labels)["accuracy"]
        history.append(record)
        bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k != "epoch"})
        if log is not None:
            log(record)
    test_p = model.predict(test.images) if len(test) else np.zeros(0)
    report = {
        "config": asdict(config),
        "train": metrics(model.predict(train.images), train.labels),
        "heldout": metrics(test_p, test.labels) if len(test) else None,
        # the trial-level verdict: each held-out trial judged on the frame it ended on
        "heldout_trials_verdict": metrics(test_p[test.final], test.labels[test.final]) if test.final.any() else None,
        "train_trials": int(len(np.unique(train.groups))),
        "heldout_trials": int(len(np.unique(test.groups))),
        "history": history,
    }
    return model, report


# ---- judging live trials -----------------------------------------------------------------------
@dataclass
class Verdict:
    trial_id: str
    success: bool
    confidence: float
    """max(p, 1 - p): how sure the classifier is of the verdict it gives."""
    reason: str


class OutcomeJudge:
    """Judges the active trial from its camera frames and keeps each trial's last frame so that an
    operator's mark turns it into a labelled example.

    - success: P(success) >= `threshold` on `confirm_frames` consecutive judged frames (a lucky frame
      with the object passing over the target must not end a trial);
    - at `episode_steps` without that: the verdict on the last frame, whatever its confidence (the
      panel auto-accepts it only above its threshold; below it the operator is asked);
    - one verdict per trial; a trial someone else judged is not judged again.
    """

    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray] | None,
        threshold: float = 0.9,
        confirm_frames: int = 3,
        judge_every: int = 1,
        episode_steps: int = 0,
        keep_trials: int = 8,
    ) -> None:
        if not 0.5 <= threshold <= 1.0 or confirm_frames < 1 or judge_every < 1 or episode_steps < 0:
            raise ValueError("threshold must be in [0.5, 1], confirm_frames and judge_every >= 1, episode_steps >= 0")
        self.predict = predict
        self.threshold, self.confirm_frames = threshold, confirm_frames
        self.judge_every, self.episode_steps = judge_every, episode_steps
        self.keep_trials = keep_trials
        self.trial_id: str | None = None
        self.frames_seen = 0
        self.confident_run = 0
        self.judged: set[str] = set()
        self.last_frame: dict[str, np.ndarray] = {}
        """trial id -> its newest frame, for the few most recent trials (a mark may come late)."""

    def start(self, trial_id: str) -> None:
        self.trial_id, self.frames_seen, self.confident_run = trial_id, 0, 0

    def on_frame(self, trial_id: str, image: np.ndarray, step: int | None = None) -> Verdict | None:
        if trial_id != self.trial_id:
            return None
        self.last_frame[trial_id] = image
        if len(self.last_frame) > self.keep_trials:  # dicts keep insertion order: drop the oldest trial
            del self.last_frame[next(iter(self.last_frame))]
        if self.predict is None or trial_id in self.judged:
            return None
        self.frames_seen += 1
        at_budget = self.episode_steps > 0 and step is not None and step >= self.episode_steps
        if self.frames_seen % self.judge_every and not at_budget:
            return None
        p = float(self.predict(image[None])[0])
        self.confident_run = self.confident_run + 1 if p >= self.threshold else 0
        if self.confident_run >= self.confirm_frames:
            reason = f"P(success) >= {self.threshold:g} on {self.confirm_frames} frames in a row"
        elif at_budget:
            reason = f"step budget {self.episode_steps} reached"
        else:
            return None
        self.judged.add(trial_id)
        success = p >= 0.5
        return Verdict(trial_id, success, max(p, 1 - p), reason)

    def on_judged(self, trial_id: str) -> None:
        """Another judge (operator, simulator) decided this trial: stop judging it."""
        self.judged.add(trial_id)

    def example(self, trial_id: str) -> np.ndarray | None:
        """The last frame seen of a trial (what the operator judged), or None if none was seen."""
        return self.last_frame.get(trial_id)
