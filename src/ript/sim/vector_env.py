"""N LIBERO envs in worker processes, stepped as a batch; crashed workers are restarted.

`VectorEnv` is the low level: `reset(contexts, env_ids)` puts each listed worker at the start of a
context (task, init state), `step(actions, env_ids)` steps them together. A worker that dies, hangs
or raises is restarted and reported in `VecStep.crashed`: its trial is void and must be retried.

`run_episodes` is the high level used by evaluation and RL: it runs one trial per context on the
vector with a batched agent, and retries a crashed trial from its start (calling `agent.begin`
again so recorded data is discarded). A crash is never counted as a success or a failure; a trial
that keeps crashing raises.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ript.core.registry import SIMULATORS
from ript.sim.contexts import Context
from ript.sim.env import LiberoEnvConfig


class WorkerCrashed(RuntimeError):
    pass


class EnvCache:
    """The envs one worker has built, by (suite, task), least recently used dropped first:
    creating an env takes seconds, resetting one to another context of its task does not."""

    def __init__(self, make_env_target: str, base_config: LiberoEnvConfig, max_envs: int) -> None:
        from collections import OrderedDict

        from ript.core.registry import load

        self._make_env = load(make_env_target)
        self.base_config, self.max_envs = base_config, max_envs
        self._envs: OrderedDict[tuple[str, int], Any] = OrderedDict()

    def env_for(self, context: Context) -> Any:
        key = (context.suite, context.task_id)
        if key not in self._envs:
            while len(self._envs) >= self.max_envs:
                self._envs.popitem(last=False)[1].close()
            self._envs[key] = self._make_env(self.base_config, context)
        self._envs.move_to_end(key)
        return self._envs[key]

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


GROUP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
"""What a terminal (Ctrl-C), `timeout` or `kill -- -PGID` send to a whole process group."""


def _worker(conn, make_env_target: str, base_config: LiberoEnvConfig, max_cached_envs: int) -> None:
    # Stopping is the parent's call (it may finish the rollout first); a worker killed by a signal
    # meant for its parent's group would only void its trial and be restarted. So the worker leaves
    # that group; it still ends with its pipe when the parent dies, and by the parent's terminate().
    # The parent started us with GROUP_SIGNALS blocked, so one sent to the group before we left it
    # is pending: ignoring it discards it, then SIGTERM is the parent's terminate() again.
    os.setpgid(0, 0)
    for number in GROUP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, GROUP_SIGNALS)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    envs = EnvCache(make_env_target, base_config, max_cached_envs)
    env = None
    while True:
        try:
            command, payload = conn.recv()
        except EOFError:  # the parent is gone
            break
        try:
            if command == "reset":
                context: Context = payload
                env = envs.env_for(context)
                conn.send(("ok", env.reset(init_state=context.init_state)))
            elif command == "step":
                if env is None:
                    raise RuntimeError("step before reset")
                conn.send(("ok", env.step(payload)))
            elif command == "close":
                break
        except Exception:  # the env may be in a bad state: report, and let the parent restart us
            conn.send(("error", traceback.format_exc()))
    envs.close()
    conn.close()


@dataclass
class VecStep:
    obs: list[dict | None]
    """Per listed env; None where crashed."""
    rewards: np.ndarray
    dones: np.ndarray
    successes: np.ndarray
    crashed: np.ndarray
    """True: the worker was restarted, the trial is void; reset that env before stepping it again."""
    infos: list[dict]

    @classmethod
    def of(cls, results: Sequence[tuple | Exception]) -> VecStep:
        """From each env's (obs, reward, done, info) step result, or the WorkerCrashed that voided it."""
        n = len(results)
        out = cls([None] * n, np.zeros(n), np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool), [{}] * n)
        for j, result in enumerate(results):
            if isinstance(result, Exception):
                out.crashed[j], out.infos[j] = True, {"error": str(result)}
                continue
            obs, reward, done, info = result
            out.obs[j], out.rewards[j], out.dones[j], out.successes[j], out.infos[j] = (
                obs,
                reward,
                done,
                info["success"],
                info,
            )
        return out


class VectorEnv:
    def __init__(
        self,
        num_envs: int,
        config: LiberoEnvConfig | None = None,
        step_timeout_s: float = 300.0,
        max_cached_envs: int = 4,
        max_reset_attempts: int = 3,
        start_method: str = "spawn",
        simulator: str = "libero",
    ) -> None:
        """config: the template every worker's env uses (its suite/task_id are replaced per context).
        simulator: the ript.core.registry.SIMULATORS entry whose factory builds each env.

        step_timeout_s bounds a reset (which may build a new env) or a step; a worker past it is
        killed and restarted. 'spawn': EGL/OpenGL state must not be inherited through fork."""
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.config = config or LiberoEnvConfig()
        self.simulator = simulator
        self._make_env_target = SIMULATORS.target(simulator)  # unknown names fail here, not in a worker
        self.step_timeout_s = step_timeout_s
        self.max_cached_envs = max_cached_envs
        self.max_reset_attempts = max_reset_attempts
        self._ctx = mp.get_context(start_method)
        self._conns: list = [None] * num_envs
        self._procs: list = [None] * num_envs
        self.restarts = 0
        for i in range(num_envs):
            self._start(i)

    def _start(self, i: int) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_worker, args=(child, self._make_env_target, self.config, self.max_cached_envs), daemon=True
        )
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, GROUP_SIGNALS)  # inherited by the child
        try:
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        child.close()
        self._conns[i], self._procs[i] = parent, proc

    def restart(self, i: int) -> None:
        proc = self._procs[i]
        if proc is not None and proc.is_alive():
            proc.kill()
        if proc is not None:
            proc.join(timeout=10)
        if self._conns[i] is not None:
            self._conns[i].close()
        self.restarts += 1
        self._start(i)

    def pid(self, i: int) -> int:
        return self._procs[i].pid

    def _send(self, i: int, command: str, payload=None) -> bool:
        try:
            self._conns[i].send((command, payload))
            return True
        except (BrokenPipeError, OSError, EOFError):
            return False

    def _receive(self, i: int):
        """The worker's reply, or raises WorkerCrashed (dead, hung past the timeout, or raised)."""
        conn = self._conns[i]
        try:
            if not conn.poll(self.step_timeout_s):
                raise WorkerCrashed(f"worker {i} did not answer within {self.step_timeout_s:.0f} s")
            status, value = conn.recv()
        except (EOFError, OSError, ConnectionError) as error:
            raise WorkerCrashed(f"worker {i} died: {error!r}") from error
        if status != "ok":
            raise WorkerCrashed(f"worker {i} raised:\n{value}")
        return value

    def _call(self, env_ids: Sequence[int], command: str, payloads: Sequence) -> list:
        """Sends to all listed workers first (they run in parallel), then collects. Crashed
        workers are restarted; their entry is the WorkerCrashed exception."""
        sent = [self._send(i, command, p) for i, p in zip(env_ids, payloads)]
        results = []
        for i, ok in zip(env_ids, sent):
            try:
                if not ok:
                    raise WorkerCrashed(f"worker {i} pipe is closed")
                results.append(self._receive(i))
            except WorkerCrashed as crash:
                self.restart(i)
                results.append(crash)
        return results

    def reset(self, contexts: Sequence[Context], env_ids: Sequence[int] | None = None) -> list[dict]:
        """Resets env_ids[j] (default: 0..len-1) to contexts[j]; returns their first observations.
        A crashed reset is retried on the restarted worker (a reset has no history to lose)."""
        env_ids = list(range(len(contexts))) if env_ids is None else list(env_ids)
        if len(env_ids) != len(contexts):
            raise ValueError(f"{len(contexts)} contexts for {len(env_ids)} envs")
        results = self._call(env_ids, "reset", contexts)
        for _attempt in range(1, self.max_reset_attempts):
            failed = [j for j, r in enumerate(results) if isinstance(r, WorkerCrashed)]
            if not failed:
                break
            retried = self._call([env_ids[j] for j in failed], "reset", [contexts[j] for j in failed])
            for j, r in zip(failed, retried):
                results[j] = r
        for r in results:
            if isinstance(r, WorkerCrashed):
                raise r
        return results

    def step(self, actions: np.ndarray, env_ids: Sequence[int] | None = None) -> VecStep:
        """Steps env_ids[j] with actions[j] ([n, 7])."""
        actions = np.asarray(actions, dtype=np.float64)
        env_ids = list(range(len(actions))) if env_ids is None else list(env_ids)
        if actions.shape != (len(env_ids), 7):
            raise ValueError(f"actions must be [{len(env_ids)}, 7], got {actions.shape}")
        return VecStep.of(self._call(env_ids, "step", list(actions)))

    def close(self) -> None:
        live = [i for i in range(self.num_envs) if self._procs[i] is not None]
        for i in live:
            self._send(i, "close")
        deadline = time.monotonic() + 10
        for i in live:
            proc, conn = self._procs[i], self._conns[i]
            # A worker whose reply was never read (the parent interrupted mid-step) is blocked
            # writing a large observation: read it off the pipe so that it reaches "close".
            while proc.is_alive() and time.monotonic() < deadline:
                try:
                    if conn.poll(0.05):
                        conn.recv()
                except (EOFError, OSError):
                    proc.join(timeout=0.05)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
            conn.close()
            self._procs[i] = None

    def __enter__(self) -> VectorEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InProcessVectorEnv:
    """VectorEnv's interface over envs stepped one after another in this process: what a rollout
    worker that is already its own process (a Ray actor) uses. An env's exception propagates; the
    process that owns it is the unit that fails and is retried."""

    def __init__(
        self, num_envs: int, config: LiberoEnvConfig | None = None, simulator: str = "libero", max_cached_envs: int = 4
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.config = config or LiberoEnvConfig()
        target = SIMULATORS.target(simulator)
        self._caches = [EnvCache(target, self.config, max_cached_envs) for _ in range(num_envs)]
        self._active: list[Any] = [None] * num_envs
        self.restarts = 0

    def reset(self, contexts: Sequence[Context], env_ids: Sequence[int] | None = None) -> list[dict]:
        env_ids = list(range(len(contexts))) if env_ids is None else list(env_ids)
        observations = []
        for i, context in zip(env_ids, contexts):
            self._active[i] = self._caches[i].env_for(context)
            observations.append(self._active[i].reset(init_state=context.init_state))
        return observations

    def step(self, actions: np.ndarray, env_ids: Sequence[int] | None = None) -> VecStep:
        actions = np.asarray(actions, dtype=np.float64)
        env_ids = list(range(len(actions))) if env_ids is None else list(env_ids)
        return VecStep.of([self._active[i].step(action) for i, action in zip(env_ids, actions)])

    def close(self) -> None:
        for cache in self._caches:
            cache.close()

    def __enter__(self) -> InProcessVectorEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class EpisodeResult:
    context: Context
    success: bool
    steps: int
    retries: int
    """How many times this trial was restarted after a worker crash."""


class EpisodeAgent(Protocol):
    """What `run_episodes` drives. Trials are indices into the contexts list."""

    def begin(self, trial: int, context: Context, obs: dict) -> None:
        """A trial (re)starts: clear its per-episode state (chunk queue, recorded steps)."""

    def act(self, trials: list[int], obs: list[dict]) -> np.ndarray:
        """Actions [len(trials), 7] for these running trials."""

    def end(self, trial: int, result: EpisodeResult) -> None:
        """A trial finished (not called for crashed attempts)."""


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `threads` inside the block (None: left as it is)."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_episodes(
    vec: VectorEnv,
    contexts: Sequence[Context],
    agent: EpisodeAgent,
    max_retries: int = 3,
    on_result: Callable[[EpisodeResult], None] | None = None,
    policy_threads: int | None = 1,
) -> list[EpisodeResult]:
    """One trial per context, up to vec.num_envs at a time; results in context order.

    `policy_threads`: torch's intra-op threads while the agent queries its policy here (None: torch's
    own setting). One by default: a query is a batch of at most num_envs observations, for which more
    threads only spin-wait beside the env workers that need the cores (bench/rollout_threads.py)."""
    with torch_threads(policy_threads):
        return _run_episodes(vec, contexts, agent, max_retries, on_result)


def _run_episodes(
    vec: VectorEnv,
    contexts: Sequence[Context],
    agent: EpisodeAgent,
    max_retries: int,
    on_result: Callable[[EpisodeResult], None] | None,
) -> list[EpisodeResult]:
    pending = list(range(len(contexts)))[::-1]  # a stack: pop() takes the lowest index
    slot_trial: list[int | None] = [None] * vec.num_envs
    retries = [0] * len(contexts)
    results: list[EpisodeResult | None] = [None] * len(contexts)
    obs: list[dict | None] = [None] * vec.num_envs
    while pending or any(t is not None for t in slot_trial):
        idle = [i for i, t in enumerate(slot_trial) if t is None][: len(pending)]
        if idle:
            starting = [pending.pop() for _ in idle]
            first_obs = vec.reset([contexts[t] for t in starting], idle)
            for i, t, o in zip(idle, starting, first_obs):
                slot_trial[i], obs[i] = t, o
                agent.begin(t, contexts[t], o)
        active = [i for i, t in enumerate(slot_trial) if t is not None]
        trials = [slot_trial[i] for i in active]
        actions = agent.act(trials, [obs[i] for i in active])
        step = vec.step(actions, active)
        for j, (i, t) in enumerate(zip(active, trials)):
            if step.crashed[j]:
                retries[t] += 1
                if retries[t] > max_retries:
                    raise WorkerCrashed(f"trial {t} crashed {retries[t]} times; last: {step.infos[j]['error']}")
                pending.append(t)  # retried next, from its start
                slot_trial[i] = None
            elif step.dones[j]:
                results[t] = EpisodeResult(
                    contexts[t], bool(step.successes[j]), int(step.infos[j]["steps"]), retries[t]
                )
                agent.end(t, results[t])
                if on_result is not None:
                    on_result(results[t])
                slot_trial[i] = None
            else:
                obs[i] = step.obs[j]
    return results  # type: ignore[return-value]
