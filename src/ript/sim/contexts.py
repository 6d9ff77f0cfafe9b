"""Contexts c = (task, init state): training contexts from fresh seeded resets, evaluation contexts
from the benchmark's 50 init states per task.

Training on the evaluation init states leaks the test set into RL (a known problem in peer
projects), so every training state is checked to be far from every benchmark state of its task;
a draw that comes too close is replaced by the next seed.
"""

from __future__ import annotations

import json
import logging
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ript.core.safe_io import atomic_write
from ript.sim.env import LiberoEnv, LiberoEnvConfig, benchmark_init_states, num_tasks, task_instruction

log = logging.getLogger("ript.contexts")
MIN_DISTANCE = 1e-3
"""A training state closer than this (max-abs over the state) to any evaluation state counts as the same."""
PLACEMENT = "hard_reset_at_rest"
"""How the training states of a contexts file were drawn: a hard reset (objects on fixtures placed
right), kept only if it settles (MAX_SETTLE_SHIFT). Files without it or with another value are stale
(`is_stale`): refused by `--contexts`, drawn again by a new run, kept by a resumed run."""
MAX_SETTLE_SHIFT = 0.1
"""A fresh placement whose objects move more than this (m, horizontally) while settling is drawn again
(`LiberoEnv.settle_shift`): an overlap flung an object away. The benchmark's init states move 0.060 m
at most (libero_spatial, 500 states); 6 of 300 fresh draws (tasks 0, 2, 8) moved 0.11-1.45 m
(bench/settle_shift.py)."""


@dataclass(frozen=True, eq=False)
class Context:
    suite: str
    task_id: int
    init_state: np.ndarray = field(repr=False)
    split: str = "train"
    """'train' (fresh seeded reset) or 'eval' (benchmark init state)."""
    index: int = 0
    """Index within its task and split (the benchmark's init-state index for 'eval')."""
    seed: int | None = None
    """Seed of the reset that produced a training state."""

    @property
    def instruction(self) -> str:
        return task_instruction(self.suite, self.task_id)


def distance_to_set(state: np.ndarray, others: np.ndarray) -> float:
    """Smallest max-abs difference between `state` and any row of `others`, ignoring sim time.

    Flattened MuJoCo state = [time, qpos, qvel]; init states are at rest, so this compares poses."""
    state, others = np.asarray(state), np.atleast_2d(others)
    if others.shape[1] != state.shape[0]:
        raise ValueError(f"state size {state.shape[0]} != evaluation state size {others.shape[1]}")
    return float(np.abs(others[:, 1:] - state[1:]).max(axis=1).min())


def evaluation_contexts(suite: str, task_ids: Sequence[int] | None = None, episodes: int = 50) -> list[Context]:
    """The benchmark's init states 0..episodes-1 of each task (the standard protocol uses 50)."""
    task_ids = range(num_tasks(suite)) if task_ids is None else task_ids
    contexts = []
    for task_id in task_ids:
        states = benchmark_init_states(suite, task_id)
        if episodes > len(states):
            raise ValueError(f"{suite} task {task_id} has {len(states)} init states, asked for {episodes}")
        contexts += [Context(suite, task_id, states[i], "eval", i) for i in range(episodes)]
    return contexts


def training_contexts(
    suite: str, task_ids: Sequence[int] | None = None, per_task: int = 16, seed: int = 0, progress: bool = False
) -> list[Context]:
    """`per_task` fresh random placements per task, each checked disjoint from the evaluation states.

    Seeds are `seed * 1_000_003 + task_id * 10_007 + k` for k = 0, 1, ... (skipping rejected draws),
    so the same arguments always give the same contexts. A draw is rejected when it matches an
    evaluation state or does not settle (an object flung away: MAX_SETTLE_SHIFT).
    """
    from tqdm import tqdm

    task_ids = list(range(num_tasks(suite)) if task_ids is None else task_ids)
    contexts: list[Context] = []
    bar = tqdm(total=len(task_ids) * per_task, desc=f"contexts {suite}", disable=not progress)
    for task_id in task_ids:
        env = LiberoEnv(LiberoEnvConfig(suite=suite, task_id=task_id, render=False, settle_steps=0))
        try:
            eval_states = benchmark_init_states(suite, task_id)
            k = 0
            while sum(c.task_id == task_id for c in contexts) < per_task:
                draw_seed = seed * 1_000_003 + task_id * 10_007 + k
                k += 1
                state = env.sample_init_state(draw_seed)
                if distance_to_set(state, eval_states) < MIN_DISTANCE:
                    continue
                if env.settle_shift(state) > MAX_SETTLE_SHIFT:
                    log.info(
                        "%s task %d: placement seed %d flings an object away; drawing another",
                        suite,
                        task_id,
                        draw_seed,
                    )
                    continue
                index = sum(c.task_id == task_id for c in contexts)
                contexts.append(Context(suite, task_id, state, "train", index, draw_seed))
                bar.update()
        finally:
            env.close()
    bar.close()
    return contexts


def check_disjoint(train: Sequence[Context], min_distance: float = MIN_DISTANCE) -> None:
    """Raises ValueError if any training context matches an evaluation init state of its task."""
    by_task: dict[tuple[str, int], list[Context]] = {}
    for context in train:
        if context.split != "train":
            raise ValueError(f"context {context} is not a training context")
        by_task.setdefault((context.suite, context.task_id), []).append(context)
    for (suite, task_id), contexts in by_task.items():
        eval_states = benchmark_init_states(suite, task_id)
        for context in contexts:
            if distance_to_set(context.init_state, eval_states) < min_distance:
                raise ValueError(f"training context {suite}/{task_id}#{context.index} equals an evaluation state")


def save_contexts(path: str | Path, contexts: Sequence[Context], drawn_with: dict | None = None) -> Path:
    """One .npz with the contexts' fields as parallel arrays (init states may differ in size per task),
    written atomically; `drawn_with`: the arguments that drew them (JSON), for a reader to check."""
    path = Path(path)
    arrays = {f"init_state_{i}": c.init_state for i, c in enumerate(contexts)}
    atomic_write(
        path,
        lambda f: np.savez_compressed(
            f,
            suite=np.array([c.suite for c in contexts]),
            task_id=np.array([c.task_id for c in contexts]),
            split=np.array([c.split for c in contexts]),
            index=np.array([c.index for c in contexts]),
            seed=np.array([-1 if c.seed is None else c.seed for c in contexts]),
            placement=np.array(PLACEMENT),
            drawn_with=np.array(json.dumps(drawn_with or {}, sort_keys=True)),
            **arrays,
        ),
    )
    return path


def draw_record(suite: str, task_ids: Sequence[int], per_task: int, seed: int) -> dict:
    """What a contexts file keeps as `drawn_with`: the arguments that draw the same contexts again,
    and how placements were drawn (a file from other drawing code is not the same draw)."""
    return {"suite": suite, "task_ids": list(task_ids), "per_task": per_task, "seed": seed, "placement": PLACEMENT}


def draw_contexts_file(
    path: str | Path, suite: str, task_ids: Sequence[int], per_task: int, seed: int = 0, progress: bool = False
) -> list[Context]:
    """training_contexts(...), checked disjoint from the evaluation states and written to `path` with
    their draw record, so that `ript train --contexts` and a resumed run can trust them."""
    contexts = training_contexts(suite, task_ids, per_task, seed=seed, progress=progress)
    check_disjoint(contexts)
    save_contexts(path, contexts, drawn_with=draw_record(suite, task_ids, per_task, seed))
    return contexts


class DrawMismatchError(ValueError):
    """A readable contexts file drawn with other arguments than the ones asked for."""


class UnusableContextsError(ValueError):
    """A contexts file named to train on that cannot be read, was drawn otherwise, or leaks evaluation states."""


def read_training_contexts(path: str | Path, wanted: dict, any_placement: bool = False) -> list[Context]:
    """The contexts in `path` if its draw record equals `wanted` (draw_record), or, with `any_placement`,
    equals it but for the placement code's version; an error saying why not."""
    with np.load(path) as data:
        drawn_with = json.loads(str(data["drawn_with"])) if "drawn_with" in data.files else None
    if any_placement and isinstance(drawn_with, dict) and "placement" in drawn_with:
        wanted = wanted | {"placement": drawn_with["placement"]}
    if drawn_with != wanted:
        raise DrawMismatchError(f"drawn with {drawn_with}, this run needs {wanted}")
    contexts = load_contexts(path)
    tasks = [c.task_id for c in contexts]
    if tasks != [t for t in wanted["task_ids"] for _ in range(wanted["per_task"])]:
        raise ValueError(f"holds contexts of tasks {sorted(set(tasks))} ({len(tasks)} in all)")
    return contexts


UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)
"""What reading a damaged or foreign .npz raises."""


def cached_training_contexts(
    path: str | Path,
    suite: str,
    task_ids: Sequence[int],
    per_task: int,
    seed: int = 0,
    progress: bool = False,
    source: str | Path | None = None,
    kind: str = "training",
) -> list[Context]:
    """training_contexts(...), kept in `path`: drawing costs a hard reset per context (~1-2 s each), so
    a resumed run reads the ones it trained on, even if drawn by older placement code (its sampler
    history and checkpoints refer to them; a warning says so). A file drawn with other arguments is
    drawn again; one that cannot be read is set aside (renamed *.corrupt) first. `source`: a file
    drawn before (`ript contexts`, another run's contexts.npz) copied into `path` instead of drawing,
    if it was drawn with these arguments; UnusableContextsError if not. `kind`: what the log calls
    them."""
    path = Path(path)
    wanted = draw_record(suite, task_ids, per_task, seed)
    if path.exists():
        try:
            contexts = read_training_contexts(path, wanted, any_placement=True)
            log.info("read %d %s contexts from %s", len(contexts), kind, path)
            return contexts  # load_contexts warned if they predate the placement fixes
        except DrawMismatchError as exc:
            log.warning("%s: %s; drawing them again", path, exc)
        except UNREADABLE as exc:
            log.error("setting aside unreadable %s (%s: %s); drawing the contexts again", path, type(exc).__name__, exc)
            path.rename(path.with_suffix(".corrupt"))
    if source is not None:
        try:
            contexts = read_training_contexts(source, wanted)
            check_disjoint(contexts)  # the file is not ours: it could hold a benchmark state
        except UNREADABLE as exc:
            raise UnusableContextsError(f"cannot train on the contexts in {source}: {exc}") from None
        save_contexts(path, contexts, drawn_with=wanted)
        log.info("read %d training contexts from %s (kept in %s)", len(contexts), source, path)
        return contexts
    log.info(
        "drawing %d %s contexts (%s tasks %s, one hard reset each)", per_task * len(task_ids), kind, suite, task_ids
    )
    return draw_contexts_file(path, suite, task_ids, per_task, seed=seed, progress=progress)


def is_stale(path: str | Path) -> bool:
    """True for a contexts file whose training states were drawn before placements were fixed: no
    placement marker (objects on fixtures misplaced) or another one (flung objects kept)."""
    with np.load(path) as data:
        placement = str(data["placement"]) if "placement" in data.files else None
        return placement != PLACEMENT and any(str(split) == "train" for split in data["split"])


def load_contexts(path: str | Path) -> list[Context]:
    if is_stale(path):
        log.warning(
            "%s: training contexts drawn before fresh placements were fixed (objects standing on a "
            "fixture, e.g. libero_spatial task 9's bowl, misplaced; or an object flung off the table by "
            "an overlap, e.g. task 0's bowl); a resumed run goes on with its own, a new run draws them again, "
            "and `ript contexts` redraws a file of your own",
            path,
        )
    with np.load(path) as data:
        return [
            Context(
                str(data["suite"][i]),
                int(data["task_id"][i]),
                data[f"init_state_{i}"],
                str(data["split"][i]),
                int(data["index"][i]),
                None if int(data["seed"][i]) < 0 else int(data["seed"][i]),
            )
            for i in range(len(data["suite"]))
        ]


VALIDATION_SEED_OFFSET = 1000
"""Validation placements are drawn with the training contexts' seed + this: another stream of resets."""


def validation_contexts(
    suite: str,
    task_ids: Sequence[int],
    per_task: int,
    seed: int,
    apart_from: Sequence[Context],
    path: str | Path | None = None,
    progress: bool = False,
) -> list[Context]:
    """Fresh placements to choose checkpoints on (split 'validation'): drawn as training contexts are,
    with seed + VALIDATION_SEED_OFFSET, so neither the benchmark's init states (the final result's)
    nor `apart_from` (the contexts trained on; ValueError if one matches) are among them. `path`:
    where they are kept, so a resumed run reads them instead of drawing again."""
    seed += VALIDATION_SEED_OFFSET
    if path is None:
        drawn = training_contexts(suite, task_ids, per_task, seed=seed, progress=progress)
    else:
        drawn = cached_training_contexts(
            path, suite, task_ids, per_task, seed=seed, progress=progress, kind="validation"
        )
    trained: dict[int, list[np.ndarray]] = {}
    for context in apart_from:
        if context.suite == suite:
            trained.setdefault(context.task_id, []).append(context.init_state)
    for context in drawn:
        states = trained.get(context.task_id)
        if states and distance_to_set(context.init_state, np.stack(states)) < MIN_DISTANCE:
            raise ValueError(
                f"validation context {suite}/{context.task_id}#{context.index} equals a training context; "
                f"use another context_seed"
            )
    return [replace(context, split="validation") for context in drawn]
