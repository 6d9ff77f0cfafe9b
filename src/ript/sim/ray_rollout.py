"""LIBERO rollouts on a Ray cluster: the same `RolloutSource` as `LiberoRolloutSource`, its trials
run by rollout workers (Ray actors), each owning a policy copy and several LIBERO envs.

    rollout(policy, contexts, K, seed):
        weights -> object store once per call (versioned; a worker reloads only a new version)
        the G*K trials -> shards, one per worker, each trial keeping its global number
        each worker: run_episodes over its own envs, every trial with its own noise (seed, number)
        results -> the K trials of each context, in order

A trial's noise is seeded by its number, never by where or with whom it ran, so for the same seed
any worker count gives the trials `backend=local` gives (tests/sim/test_ray_rollout.py). A worker
that dies mid-rollout (killed, out of memory, its node lost) is replaced and its whole shard runs
again from the trials' seeds: a trial is counted once, from the attempt that finished.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ript.core.policy import Policy
from ript.core.registry import POLICY_TYPES
from ript.core.sampler import Trial
from ript.core.trials import Trajectory
from ript.sim.contexts import Context
from ript.sim.env import LiberoEnvConfig
from ript.sim.rollout_source import Featurize, PolicyAgent, evaluation_metrics
from ript.sim.vector_env import InProcessVectorEnv, run_episodes

log = logging.getLogger("ript.ray")


@dataclass
class RayConfig:
    address: str | None = None
    """A running cluster ('auto', 'ray://host:10001', 'host:6379'); None: start a local one on 127.0.0.1."""
    num_workers: int = 2
    """Rollout workers (Ray actors)."""
    envs_per_worker: int = 1
    """LIBERO envs each worker steps (one query batch across them)."""
    cpus_per_worker: float = 1.0
    max_worker_restarts: int = 3
    """Times one rollout call replaces a dead worker before it gives up."""

    def __post_init__(self) -> None:
        if self.num_workers < 1 or self.envs_per_worker < 1 or self.cpus_per_worker <= 0:
            raise ValueError(
                f"need num_workers >= 1, envs_per_worker >= 1, cpus_per_worker > 0; got {self.num_workers}, "
                f"{self.envs_per_worker}, {self.cpus_per_worker}"
            )


class RolloutWorker:
    """A Ray actor's body: a policy copy, its envs, and the latest weights version it loaded."""

    def __init__(
        self,
        policy_type: str,
        policy_config: dict,
        env_config: LiberoEnvConfig,
        num_envs: int,
        featurize: Featurize,
        execute_steps: int,
    ) -> None:
        torch.set_num_threads(1)
        self.policy = POLICY_TYPES.get(policy_type)(policy_config).eval()
        self.vec = InProcessVectorEnv(num_envs, env_config)
        self.featurize, self.execute_steps = featurize, execute_steps
        self.version = -1

    def run(
        self, version: int, weights: dict, contexts: list[Context], trial_ids: list[int], seed: int, stochastic: bool
    ) -> list[tuple[int, bool, int, Trajectory | None]]:
        """(trial number, success, steps, trajectory or None) for each trial of the shard."""
        if version != self.version:
            self.policy.load_state_dict(weights)
            self.version = version
        agent = PolicyAgent(self.policy, self.featurize, self.execute_steps, stochastic, seed=seed, trial_ids=trial_ids)
        with torch.no_grad():
            results = run_episodes(self.vec, contexts, agent)
        return [(trial_ids[n], result.success, result.steps, agent.finished[n][1]) for n, result in enumerate(results)]


class RayRolloutSource:
    """`RolloutSource` on Ray workers; `close()` ends the workers (and a cluster it started)."""

    def __init__(
        self,
        policy: Policy,
        contexts: Sequence[Context],
        eval_contexts: Sequence[Context],
        featurize: Featurize,
        execute_steps: int,
        env_config: LiberoEnvConfig,
        config: RayConfig | None = None,
    ) -> None:
        import ray

        from ript.policies.checkpoint import live_config

        self.contexts = list(contexts)
        self.eval_contexts = list(eval_contexts)
        self.config = config or RayConfig()
        self._started_cluster = not ray.is_initialized()
        if self._started_cluster:
            if self.config.address is not None:
                check_reachable(self.config.address)
            try:
                if self.config.address is None:
                    ray.init(
                        num_cpus=max(2, int(self.config.num_workers * self.config.cpus_per_worker)),
                        include_dashboard=False,
                        _node_ip_address="127.0.0.1",
                        log_to_driver=False,
                    )
                else:
                    ray.init(address=self.config.address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise RuntimeError(f"cannot reach the Ray cluster at {self.config.address!r}: {exc}") from exc
        self._actor_class = ray.remote(num_cpus=self.config.cpus_per_worker, max_restarts=0)(RolloutWorker)
        self._worker_args = (
            getattr(policy, "policy_type", "vla"),
            live_config(policy),  # type: ignore[arg-type]
            env_config,
            self.config.envs_per_worker,
            featurize,
            execute_steps,
        )
        self.workers = [self._new_worker() for _ in range(self.config.num_workers)]
        self._version = 0
        self.worker_restarts = 0

    def _new_worker(self):
        return self._actor_class.remote(*self._worker_args)

    def rollout(self, policy: Policy, contexts: list[Context], group_size: int, seed: int) -> list[list[Trial]]:
        repeated = [c for c in contexts for _ in range(group_size)]
        results = self._run(policy, repeated, seed, stochastic=True)
        trials = [Trial(-1, float(results[n][1]), results[n][3]) for n in range(len(repeated))]
        return [trials[i * group_size : (i + 1) * group_size] for i in range(len(contexts))]

    def evaluate(self, policy: Policy, seed: int = 0) -> dict[str, float]:
        """Deterministic policy on the held-out benchmark states: overall and per-task success."""
        if not self.eval_contexts:
            return {}
        results = self._run(policy, self.eval_contexts, seed, stochastic=False)
        return evaluation_metrics(self.eval_contexts, [results[n][1] for n in range(len(self.eval_contexts))])

    def _run(self, policy: Policy, contexts: list[Context], seed: int, stochastic: bool) -> dict[int, tuple]:
        """Every trial of `contexts` once, by number; a dead worker's shard runs again on a new one."""
        import ray
        from ray.exceptions import RayActorError

        self._version += 1
        weights = ray.put({k: v.detach().cpu() for k, v in policy.state_dict().items()})
        shards = {w: list(range(w, len(contexts), len(self.workers))) for w in range(len(self.workers))}
        shards = {w: ids for w, ids in shards.items() if ids}

        def launch(w: int):
            ids = shards[w]
            return self.workers[w].run.remote(self._version, weights, [contexts[i] for i in ids], ids, seed, stochastic)

        pending = {launch(w): w for w in shards}
        results: dict[int, tuple] = {}
        restarts = 0
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            w = pending.pop(done[0])
            try:
                for result in ray.get(done[0]):
                    results[result[0]] = result
            except RayActorError as exc:
                restarts += 1
                self.worker_restarts += 1
                if restarts > self.config.max_worker_restarts:
                    raise RuntimeError(f"rollout workers died {restarts} times in one rollout; last: {exc}") from exc
                log.warning(
                    "rollout worker %d died (%s); its %d trials run again on a new worker", w, exc, len(shards[w])
                )
                self.workers[w] = self._new_worker()
                pending[launch(w)] = w
        return results

    def close(self) -> None:
        import ray

        for worker in self.workers:
            ray.kill(worker)
        self.workers = []
        if self._started_cluster:
            ray.shutdown()


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fails at once, naming the address, when nothing listens there: ray.init itself retries an
    unreachable head for minutes. 'auto' (an address Ray looks up) is left to Ray."""
    import socket

    if address == "auto":
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"ray.address must be 'auto', 'host:port' or 'ray://host:port', got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConnectionError(
            f"cannot reach the Ray cluster at {address!r} ({exc}); start its head with `ray start --head` "
            "there, or set ray.address (docs/scale.md)"
        ) from exc
