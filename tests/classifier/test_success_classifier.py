"""The success classifier's core: data files, held-out splits, metrics, training, checkpoints, and
the judge that turns per-frame probabilities into one verdict per trial."""

from __future__ import annotations

import numpy as np
import pytest
from classifier_scenes import dataset, scene

from ript.core.safe_io import CorruptFileError, save_verified
from ript.policies.success_classifier import (
    ClassifierConfig,
    Examples,
    OutcomeJudge,
    load_classifier,
    load_examples,
    metrics,
    save_classifier,
    save_examples,
    split_by_group,
    train_classifier,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_examples_round_trip_resize_and_bad_file(tmp_path):
    images, labels, groups, final = dataset(4, frames_per_trial=2, size=40)
    save_examples(tmp_path / "a.npz", images, labels, groups, final)
    save_examples(tmp_path / "sub" / "b.npz", images[:1], [1], ["op-trial"])  # an operator example
    loaded = load_examples([tmp_path], image_size=32)
    assert loaded.images.shape == (9, 32, 32, 3) and loaded.images.dtype == np.uint8
    assert loaded.labels.tolist() == labels.tolist() + [1]
    assert loaded.groups[-1] == "op-trial" and loaded.final.tolist() == final.tolist() + [True]
    (tmp_path / "c.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="c.npz"):
        load_examples([tmp_path], image_size=32)
    with pytest.raises(ValueError, match="labels"):
        save_examples(tmp_path / "d.npz", images, labels[:-1], groups)
    with pytest.raises(FileNotFoundError):
        load_examples([tmp_path / "missing"], image_size=32)


def test_split_keeps_trials_whole():
    groups = np.repeat([f"t{i}" for i in range(20)], 3)
    held = split_by_group(groups, 0.25, seed=3)
    assert held.sum() == 15  # 5 of 20 trials, 3 frames each
    for g in np.unique(groups):
        assert len(set(held[groups == g].tolist())) == 1
    assert not np.array_equal(held, split_by_group(groups, 0.25, seed=4))


def test_metrics_counts_and_confidence_table():
    p = np.array([0.95, 0.7, 0.2, 0.6, 0.02])
    y = np.array([1, 1, 0, 0, 1])
    m = metrics(p, y)
    assert (m["tp"], m["tn"], m["fp"], m["fn"]) == (2, 1, 1, 1)
    assert m["accuracy"] == pytest.approx(0.6) and m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    at_09 = next(r for r in m["by_confidence"] if r["threshold"] == 0.9)
    assert at_09["decided"] == pytest.approx(0.4)  # 0.95 and 0.02 are that sure
    assert at_09["accuracy_decided"] == pytest.approx(0.5)  # 0.02 says failure, it was a success


def test_learns_held_out_trials_and_checkpoint_round_trip(tmp_path):
    images, labels, groups, final = dataset(120, seed=1, frames_per_trial=2, size=64)
    save_examples(tmp_path / "train.npz", images, labels, groups, final)
    examples = load_examples([tmp_path / "train.npz"], image_size=64)
    config = ClassifierConfig(image_size=64, epochs=12, batch_size=32, holdout_fraction=0.25, seed=0)
    model, report = train_classifier(examples, config, progress=False)
    assert report["heldout_trials"] == 30 and report["train_trials"] == 90
    assert report["history"][-1]["loss"] < 0.5 * report["history"][0]["loss"]
    assert report["heldout"]["accuracy"] >= 0.9, report["heldout"]
    assert report["heldout_trials_verdict"]["n"] == 30

    path = tmp_path / "classifier.ckpt"
    save_classifier(model, config, path, report)
    loaded, loaded_report = load_classifier(path)
    fresh = np.stack([scene(s, np.random.default_rng(9 + s)) for s in (True, False)])
    np.testing.assert_allclose(loaded.predict(fresh), model.predict(fresh), atol=1e-6)
    assert loaded_report["heldout"]["accuracy"] == report["heldout"]["accuracy"]
    assert model.predict(fresh[:, ::2, ::2]).shape == (2,)  # any frame size: resized first

    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(CorruptFileError):
        load_classifier(path)
    save_verified({"kind": "policy"}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="not a success-classifier"):
        load_classifier(tmp_path / "other.ckpt")


def test_training_needs_both_outcomes():
    images, labels, groups, final = dataset(6, frames_per_trial=1, size=32)
    labels[:] = 0
    with pytest.raises(ValueError, match="successes and failures"):
        train_classifier(Examples(images, labels, groups, final), ClassifierConfig(image_size=32, epochs=1))


class Scripted:
    """predict() returning a scripted sequence of P(success), one per judged frame."""

    def __init__(self, values):
        self.values, self.calls = list(values), 0

    def __call__(self, images):
        self.calls += 1
        return np.array([self.values.pop(0)])


FRAME = np.zeros((8, 8, 3), np.uint8)


def test_judge_needs_consecutive_confident_frames_and_judges_once():
    predict = Scripted([0.95, 0.5, 0.95, 0.97, 0.99, 0.99])
    judge = OutcomeJudge(predict, threshold=0.9, confirm_frames=3)
    judge.start("t1")
    verdicts = [judge.on_frame("t1", FRAME, step) for step in range(5)]
    assert verdicts[:4] == [None] * 4  # the 0.5 breaks the first run
    assert verdicts[4].success and verdicts[4].confidence == pytest.approx(0.99) and verdicts[4].trial_id == "t1"
    assert judge.on_frame("t1", FRAME, 5) is None and predict.calls == 5  # judged once, then quiet
    assert judge.on_frame("other", FRAME, 0) is None  # not the active trial


def test_judge_gives_a_verdict_at_the_step_budget_and_defers_to_other_judges():
    judge = OutcomeJudge(Scripted([0.3, 0.3, 0.3, 0.7]), threshold=0.9, judge_every=2, episode_steps=10)
    judge.start("t2")
    out = [judge.on_frame("t2", FRAME, step) for step in (1, 2, 3, 4, 5, 6, 10)]
    assert out[:6] == [None] * 6
    assert out[6] is not None and out[6].success and out[6].confidence == pytest.approx(0.7)  # unsure: the panel asks
    assert "budget" in out[6].reason

    judge = OutcomeJudge(Scripted([0.99] * 5), threshold=0.9, confirm_frames=1)
    judge.start("t3")
    judge.on_judged("t3")  # the operator was faster
    assert judge.on_frame("t3", FRAME + 1, 1) is None
    assert judge.example("t3")[0, 0, 0] == 1  # but its last frame is kept for the operator's label


def test_judge_without_model_only_keeps_frames():
    judge = OutcomeJudge(None, keep_trials=2)
    for trial in ("a", "b", "c"):
        judge.start(trial)
        assert judge.on_frame(trial, FRAME, 0) is None
    assert judge.example("a") is None and judge.example("c") is not None
    with pytest.raises(ValueError):
        OutcomeJudge(None, threshold=0.3)
