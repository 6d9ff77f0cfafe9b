"""Training contexts come from fresh seeded resets and never equal an evaluation init state."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ript.sim.contexts import (
    Context,
    cached_training_contexts,
    check_disjoint,
    distance_to_set,
    evaluation_contexts,
    load_contexts,
    save_contexts,
    training_contexts,
)

pytestmark = pytest.mark.slow


def test_training_contexts_are_disjoint_and_reproducible(tmp_path, eval_states):
    train = training_contexts("libero_spatial", [0], per_task=3, seed=0)
    assert len(train) == 3 and all(c.split == "train" and c.task_id == 0 for c in train)
    check_disjoint(train)
    for context in train:
        assert distance_to_set(context.init_state, eval_states) > 1e-3
    assert len({c.seed for c in train}) == 3
    again = training_contexts("libero_spatial", [0], per_task=1, seed=0)
    np.testing.assert_array_equal(again[0].init_state, train[0].init_state)
    other_seed = training_contexts("libero_spatial", [0], per_task=1, seed=1)
    assert np.abs(other_seed[0].init_state[1:] - train[0].init_state[1:]).max() > 1e-3
    path = save_contexts(tmp_path / "contexts.npz", train)
    loaded = load_contexts(path)
    assert [(c.suite, c.task_id, c.index, c.seed) for c in loaded] == [
        (c.suite, c.task_id, c.index, c.seed) for c in train
    ]
    np.testing.assert_array_equal(loaded[2].init_state, train[2].init_state)


def test_a_placement_that_flings_an_object_away_is_drawn_again(caplog):
    # libero_spatial task 0, placement seed 17 * 1_000_003: the bowl overlaps its neighbours and is
    # flung 0.14 m while the scene settles (a scene no policy can solve); the next seed settles.
    from ript.sim.contexts import MAX_SETTLE_SHIFT
    from ript.sim.env import LiberoEnv, LiberoEnvConfig

    env = LiberoEnv(LiberoEnvConfig(suite="libero_spatial", task_id=0, render=False, settle_steps=0))
    try:
        assert env.settle_shift(env.sample_init_state(17 * 1_000_003)) > MAX_SETTLE_SHIFT
        benchmark = [env.settle_shift(c.init_state) for c in evaluation_contexts("libero_spatial", [0], 10)]
        assert max(benchmark) < MAX_SETTLE_SHIFT and max(benchmark) > 0.0  # objects do land and slide a little
    finally:
        env.close()
    with caplog.at_level(logging.INFO, logger="ript.contexts"):
        drawn = training_contexts("libero_spatial", [0], per_task=1, seed=17)
    assert [c.seed for c in drawn] == [17 * 1_000_003 + 1]
    assert f"placement seed {17 * 1_000_003} flings an object away" in caplog.text


def test_contexts_drawn_before_the_placement_fix_are_flagged_and_ripts_own_file_redrawn(
    tmp_path, caplog, monkeypatch, eval_states
):
    from ript.cli import up as up_cli
    from ript.sim import contexts as contexts_module
    from ript.sim.contexts import is_stale

    train = [Context("libero_spatial", 0, eval_states[0] + 0.1, "train", 0, 11)]
    fresh = save_contexts(tmp_path / "fresh.npz", train)
    with np.load(fresh) as data:  # a file as ript wrote it before: no placement marker
        old = {k: data[k] for k in data.files if k != "placement"}
    np.savez_compressed(tmp_path / "old.npz", **old)
    assert not is_stale(fresh) and is_stale(tmp_path / "old.npz")
    np.savez_compressed(tmp_path / "flung.npz", **old, placement=np.array("hard_reset"))  # kept flung draws
    assert is_stale(tmp_path / "flung.npz")
    assert (
        load_contexts(tmp_path / "old.npz")[0].seed == 11
        and "`ript contexts` redraws a file of your own" in caplog.text
    )
    evaluation = save_contexts(tmp_path / "eval.npz", evaluation_contexts("libero_spatial", [0], episodes=1))
    with np.load(evaluation) as data:
        np.savez_compressed(tmp_path / "eval_old.npz", **{k: data[k] for k in data.files if k != "placement"})
    assert not is_stale(tmp_path / "eval_old.npz"), "benchmark states were never drawn"

    drawn = []
    monkeypatch.setattr(contexts_module, "training_contexts", lambda *a, **k: drawn.append(a) or train)
    for redraw, expected in ((False, []), (True, [("libero_spatial", [0], 1)])):
        path = tmp_path / f"mine_{redraw}.npz"
        path.write_bytes((tmp_path / "old.npz").read_bytes())
        up_cli.ensure_contexts({"contexts_file": str(path)}, "0", 1, redraw_stale=redraw)
        assert drawn == expected and is_stale(path) != redraw
        drawn.clear()


def test_a_run_draws_its_contexts_once_and_redraws_a_file_it_cannot_trust(tmp_path, monkeypatch, caplog):
    from ript.sim import contexts as contexts_module

    caplog.set_level(logging.INFO, logger="ript.contexts")
    draws = []
    real_draw = contexts_module.training_contexts
    monkeypatch.setattr(contexts_module, "training_contexts", lambda *a, **k: draws.append(a) or real_draw(*a, **k))
    path = tmp_path / "run" / "contexts.npz"
    first = cached_training_contexts(path, "libero_spatial", [0], per_task=2, seed=0)
    again = cached_training_contexts(path, "libero_spatial", [0], per_task=2, seed=0)
    assert len(draws) == 1 and f"read 2 training contexts from {path}" in caplog.text
    assert [c.seed for c in again] == [c.seed for c in first]
    np.testing.assert_array_equal(again[1].init_state, first[1].init_state)

    # drawn by older placement code (a run resumed after an upgrade): kept, with a warning
    with np.load(path) as data:
        older = {k: data[k] for k in data.files} | {"placement": np.array("hard_reset")}
    older["drawn_with"] = np.array(str(older["drawn_with"]).replace('"hard_reset_at_rest"', '"hard_reset"'))
    np.savez_compressed(path, **older)
    kept = cached_training_contexts(path, "libero_spatial", [0], per_task=2, seed=0)
    assert len(draws) == 1 and [c.seed for c in kept] == [c.seed for c in first]
    assert "a resumed run goes on with its own" in caplog.text

    # other drawing arguments (a run folder reused with another seed): drawn again, never mixed up
    other = cached_training_contexts(path, "libero_spatial", [0], per_task=1, seed=1)
    assert len(draws) == 2 and "this run needs" in caplog.text
    assert np.abs(other[0].init_state[1:] - first[0].init_state[1:]).max() > 1e-3
    # a file cut short (a crash mid-copy, a full disk): set aside for inspection, drawn again, same states
    path.write_bytes(path.read_bytes()[:200])
    redrawn = cached_training_contexts(path, "libero_spatial", [0], per_task=1, seed=1)
    assert len(draws) == 3 and path.with_suffix(".corrupt").exists() and "setting aside unreadable" in caplog.text
    np.testing.assert_array_equal(redrawn[0].init_state, other[0].init_state)
    assert len(cached_training_contexts(path, "libero_spatial", [0], per_task=1, seed=1)) == 1 and len(draws) == 3


def test_a_run_trains_on_contexts_drawn_before_with_its_arguments_and_refuses_others(
    tmp_path, monkeypatch, eval_states
):
    from argparse import Namespace

    from ript.cli import contexts as contexts_cli
    from ript.sim import contexts as contexts_module
    from ript.sim.contexts import UnusableContextsError

    shared = tmp_path / "shared.npz"
    args = Namespace(suite="libero_spatial", tasks="0", per_task=2, seed=0, out=shared)
    assert contexts_cli.run(args) == 0
    draws = []
    monkeypatch.setattr(contexts_module, "training_contexts", lambda *a, **k: draws.append(a) or [])
    run_file = tmp_path / "run" / "contexts.npz"
    contexts = cached_training_contexts(run_file, "libero_spatial", [0], per_task=2, seed=0, source=shared)
    assert draws == [] and [c.seed for c in contexts] == [c.seed for c in load_contexts(shared)]
    # the run keeps its own copy (a resume reads it even if the shared file is gone)
    shared_states = [c.init_state for c in load_contexts(shared)]
    shared.unlink()
    again = cached_training_contexts(run_file, "libero_spatial", [0], per_task=2, seed=0)
    assert draws == [] and all(np.array_equal(a.init_state, b) for a, b in zip(again, shared_states, strict=True))

    # drawn with other arguments, not a contexts file, or holding a benchmark state: refused, nothing written
    save_contexts(shared, again, drawn_with=contexts_module.draw_record("libero_spatial", [0], 2, 0))
    leaked = tmp_path / "leaked.npz"
    save_contexts(
        leaked,
        [again[0], Context("libero_spatial", 0, eval_states[3], "train", 1, 5)],
        drawn_with=contexts_module.draw_record("libero_spatial", [0], 2, 0),
    )
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    for source, seed, reason in (
        (shared, 1, "this run needs"),
        (tmp_path / "junk.npz", 0, "BadZipFile|zip"),
        (tmp_path / "missing.npz", 0, "No such file"),
        (leaked, 0, "equals an evaluation state"),
    ):
        target = tmp_path / f"refused_{source.stem}" / "contexts.npz"
        with pytest.raises(UnusableContextsError, match=reason):
            cached_training_contexts(target, "libero_spatial", [0], per_task=2, seed=seed, source=source)
        assert not target.exists() and draws == []


def test_an_evaluation_state_is_caught(eval_states):
    leaked = Context("libero_spatial", 0, eval_states[17] + 1e-6, "train", 0)
    with pytest.raises(ValueError, match="evaluation state"):
        check_disjoint([leaked])


def test_evaluation_contexts_are_the_benchmark_states(eval_states):
    contexts = evaluation_contexts("libero_spatial", [0], episodes=50)
    assert len(contexts) == 50 and [c.index for c in contexts] == list(range(50))
    np.testing.assert_array_equal(np.stack([c.init_state for c in contexts]), eval_states)
    with pytest.raises(ValueError):
        evaluation_contexts("libero_spatial", [0], episodes=51)
