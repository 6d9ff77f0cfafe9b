"""LIBERO rollouts on a Ray cluster: the same `RolloutSource` as `LiberoRolloutSource`, its trials
run by rollout workers (Ray actors), each owning a policy copy and several LIBERO envs.

    rollout(policy, contexts, K, seed):
        weights -> object store once per call (versioned; a worker reloads only a new version)
        the G*K trials -> shards, one per worker, each trial keeping its global number
        each worker: run_episodes over its own envs, every trial with its own noise (seed, number)
        results -> the K trials of each context, in order

Where the policy runs is `RayConfig.inference`: 'worker' (each worker queries its own copy) or
'server' (one `InferenceServer` actor, on a GPU when given one, answers every worker's queries in
batches gathered across workers; the workers then hold no policy, only envs). A server query
carries each row's generator state, so every trial still draws its noise from its own generator.

A trial's noise is seeded by its number, never by where or with whom it ran, so for the same seed
any worker count and either inference placement gives the trials `backend=local` gives
(tests/sim/test_ray_rollout.py, tests/sim/test_ray_inference.py). A worker that dies mid-rollout
(killed, out of memory, its node lost) is replaced and its whole shard runs again from the trials'
seeds: a trial is counted once, from the attempt that finished. A server that dies is replaced the
same way: a new one loads the call's weights and the shards it failed run again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ript.core.policy import Policy, PolicySample
from ript.core.registry import POLICY_TYPES
from ript.core.sampler import Trial
from ript.core.trials import Trajectory
from ript.sim.contexts import Context
from ript.sim.env import LiberoEnvConfig
from ript.sim.rollout_source import Featurize, PolicyAgent, evaluation_metrics, sample_rows
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
    """Times one rollout call replaces a dead worker (or inference server) before it gives up."""
    inference: str = "worker"
    """Where the policy runs: 'worker' (a copy in each worker) or 'server' (one InferenceServer actor
    answers every worker's queries in batches)."""
    server_gpus: float = 0.0
    """GPUs the inference server asks Ray for (it runs the policy on cuda when it gets one)."""
    server_cpus: float = 1.0
    gather_window_ms: float = 2.0
    """How long the server waits for the other workers' queries before it runs a partial batch."""

    def __post_init__(self) -> None:
        if self.num_workers < 1 or self.envs_per_worker < 1 or self.cpus_per_worker <= 0:
            raise ValueError(
                f"need num_workers >= 1, envs_per_worker >= 1, cpus_per_worker > 0; got {self.num_workers}, "
                f"{self.envs_per_worker}, {self.cpus_per_worker}"
            )
        if self.inference not in ("worker", "server"):
            raise ValueError(f"ray.inference must be 'worker' or 'server', got {self.inference!r}")
        if self.server_gpus < 0 or self.server_cpus <= 0 or self.gather_window_ms < 0:
            raise ValueError(
                f"need server_gpus >= 0, server_cpus > 0, gather_window_ms >= 0; got {self.server_gpus}, "
                f"{self.server_cpus}, {self.gather_window_ms}"
            )


class StaleWeights(RuntimeError):
    """A query for weights the inference server does not hold (an older or newer version)."""


class InferenceServerDied(RuntimeError):
    """The inference server died while a worker waited on it: the driver replaces it and reruns."""


class InferenceServer:
    """A Ray actor's body: the one policy every rollout worker queries (inference='server').

    It is an async actor: each query waits on a future on the actor's event loop, and a gathered
    batch runs when every worker still running in this call has asked (each worker has at most one
    query out: it waits for its actions) or when the gathering window ends, whichever comes first.
    Chosen over ray.util.queue because a queue is an actor of its own (one more hop per query, and
    the answer would need a second channel back), while here each call's return value is its answer.
    The model runs on the event loop's thread, so queries that arrive meanwhile gather for the next
    batch. Rows are sampled with the noise of their own trial's generator (its state travels with
    the query and comes back advanced), so a row's sample does not depend on its batch."""

    def __init__(self, policy_type: str, policy_config: dict, gather_window_s: float, threads: int) -> None:
        torch.set_num_threads(threads)
        self.policy = POLICY_TYPES.get(policy_type)(policy_config).eval()
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.policy.to(self.device)
        self.gather_window_s = gather_window_s
        self.version = -1
        self.clients = 1
        self.pending: dict[str, list[tuple[dict, list, asyncio.Future]]] = {"sample": [], "act": []}
        self.gathering = {"sample": 0, "act": 0}
        self.stats = {"batches": 0, "rows": 0, "queries": 0, "max_rows": 0, "max_queries": 0}
        # every method is async, so all of them (and the batches they start) run on the event
        # loop's one thread: the pending lists and futures are never touched from two threads

    async def load(self, version: int, weights: dict, clients: int) -> None:
        """The weights of rollout call `version`, queried by `clients` workers at once."""
        if version < self.version:
            raise StaleWeights(f"weights version {version} is older than the server's {self.version}")
        if version != self.version:
            self.policy.load_state_dict(weights)
            self.version = version
        self.clients = max(1, clients)

    async def leave(self) -> None:
        """A worker finished its shard: later batches need not wait for it."""
        self.clients = max(1, self.clients - 1)
        for kind in self.pending:
            if self.pending[kind] and len(self.pending[kind]) >= self.clients:
                self._run_batch(kind)

    async def statistics(self) -> dict:
        return dict(self.stats)

    async def sample(self, version: int, batch: dict, generator_states: list[torch.Tensor]):
        """(PolicySample, the generators' states after drawing) for one worker's rows."""
        return await self._query("sample", version, batch, generator_states)

    async def act(self, version: int, batch: dict) -> torch.Tensor:
        return await self._query("act", version, batch, [])

    async def _query(self, kind: str, version: int, batch: dict, generator_states: list):
        if version != self.version:
            raise StaleWeights(f"query for weights version {version}; the server holds {self.version}")
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self.pending[kind].append((batch, generator_states, answer))
        if len(self.pending[kind]) >= self.clients:
            self._run_batch(kind)
        elif len(self.pending[kind]) == 1:
            gathering = self.gathering[kind]
            loop.call_later(self.gather_window_s, self._window_ended, kind, gathering)
        return await answer

    def _window_ended(self, kind: str, gathering: int) -> None:
        if self.gathering[kind] == gathering and self.pending[kind]:
            self._run_batch(kind)

    def _run_batch(self, kind: str) -> None:
        queries, self.pending[kind] = self.pending[kind], []
        self.gathering[kind] += 1
        sizes = [next(iter(q[0].values())).shape[0] for q in queries]
        batch = {key: torch.cat([q[0][key] for q in queries]).to(self.device) for key in queries[0][0]}
        try:
            with torch.no_grad():
                if kind == "sample":
                    generators = [torch.Generator().set_state(state) for q in queries for state in q[1]]
                    result = sample_rows(self.policy, batch, generators)
                    parts = zip(
                        result.actions.cpu().split(sizes),
                        result.scored.cpu().split(sizes),
                        result.log_probs.cpu().split(sizes),
                    )
                    states = iter([g.get_state() for g in generators])
                    answers: list = [
                        (PolicySample(a, s, lp), [next(states) for _ in range(n)])
                        for (a, s, lp), n in zip(parts, sizes)
                    ]
                else:
                    answers = list(self.policy.act(batch).cpu().split(sizes))
        except Exception as exc:  # every query of the batch gets the error
            for q in queries:
                q[2].set_exception(exc)
            return
        self.stats["batches"] += 1
        self.stats["rows"] += sum(sizes)
        self.stats["queries"] += len(queries)
        self.stats["max_rows"] = max(self.stats["max_rows"], sum(sizes))
        self.stats["max_queries"] = max(self.stats["max_queries"], len(queries))
        for q, answer in zip(queries, answers):
            q[2].set_result(answer)


class ServerQueries:
    """PolicyQueries answered by an InferenceServer: a worker's side of inference='server'."""

    def __init__(
        self, server, version: int, chunk_size: int, scores_per_step: bool, links_queries: bool, action_dim: int
    ) -> None:
        self.server, self.version = server, version
        self.chunk_size, self.scores_per_step = chunk_size, scores_per_step
        self.links_queries, self.action_dim = links_queries, action_dim

    def sample_rows(self, batch: dict[str, torch.Tensor], generators: Sequence[torch.Generator]) -> PolicySample:
        states = [g.get_state() for g in generators]
        sample, advanced = self._ask(self.server.sample.remote(self.version, batch, states))
        for generator, state in zip(generators, advanced):
            generator.set_state(state)
        return sample

    def act(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._ask(self.server.act.remote(self.version, batch))

    @staticmethod
    def _ask(reference):
        import ray
        from ray.exceptions import RayActorError

        try:
            return ray.get(reference)
        except RayActorError as exc:
            raise InferenceServerDied(f"the inference server died: {exc}") from exc


class RolloutWorker:
    """A Ray actor's body: its envs and either a policy copy with the latest weights version it
    loaded (inference='worker') or, with `served` (chunk_size, scores_per_step, links_queries,
    action_dim), no policy: the
    InferenceServer passed to `run` answers its queries."""

    def __init__(
        self,
        policy_type: str,
        policy_config: dict,
        env_config: LiberoEnvConfig,
        num_envs: int,
        featurize: Featurize,
        execute_steps: int,
        served: tuple[int, bool, bool, int] | None = None,
    ) -> None:
        torch.set_num_threads(1)
        self.served = served
        self.policy = None if served else POLICY_TYPES.get(policy_type)(policy_config).eval()
        self.vec = InProcessVectorEnv(num_envs, env_config)
        self.featurize, self.execute_steps = featurize, execute_steps
        self.version = -1

    def run(
        self,
        version: int,
        weights: dict | None,
        contexts: list[Context],
        trial_ids: list[int],
        seed: int,
        stochastic: bool,
        server=None,
    ) -> list[tuple[int, bool, int, Trajectory | None]]:
        """(trial number, success, steps, trajectory or None) for each trial of the shard."""
        if self.served is not None:
            queries = ServerQueries(server, version, *self.served)
            agent = PolicyAgent(queries, self.featurize, self.execute_steps, stochastic, seed=seed, trial_ids=trial_ids)
        else:
            assert self.policy is not None and weights is not None
            if version != self.version:
                self.policy.load_state_dict(weights)
                self.version = version
            agent = PolicyAgent(
                self.policy, self.featurize, self.execute_steps, stochastic, seed=seed, trial_ids=trial_ids
            )
        with torch.no_grad():
            results = run_episodes(self.vec, contexts, agent)
        if server is not None:
            server.leave.remote()  # fire and forget: the others' batches stop waiting for this worker
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
        serving = self.config.inference == "server"
        server_cpus = self.config.server_cpus if serving else 0.0
        if self._started_cluster:
            if self.config.address is not None:
                check_reachable(self.config.address)
            try:
                if self.config.address is None:
                    ray.init(
                        num_cpus=max(2, math.ceil(self.config.num_workers * self.config.cpus_per_worker + server_cpus)),
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
            (policy.chunk_size, policy.scores_per_step, policy.links_queries, policy.action_dim) if serving else None,
        )
        self.server = None
        self.server_restarts = 0
        self._server_generation = 0
        self._server_name = f"ript-inference-{uuid.uuid4().hex[:8]}"
        if serving:
            self._server_class = ray.remote(
                num_cpus=self.config.server_cpus, num_gpus=self.config.server_gpus, max_restarts=0
            )(InferenceServer)
            self._server_args = (
                self._worker_args[0],
                self._worker_args[1],
                self.config.gather_window_ms / 1000,
                max(1, int(self.config.server_cpus)),
            )
            self.server = self._new_server()
        self.workers = [self._new_worker() for _ in range(self.config.num_workers)]
        self._version = 0
        self.worker_restarts = 0

    def _new_worker(self):
        return self._actor_class.remote(*self._worker_args)

    def _new_server(self):
        """An InferenceServer named by this source and its generation (`ray list actors` shows it)."""
        return self._server_class.options(name=f"{self._server_name}-{self._server_generation}").remote(
            *self._server_args
        )

    @property
    def server_name(self) -> str:
        return f"{self._server_name}-{self._server_generation}"

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
        """Every trial of `contexts` once, by number; a dead worker's shard runs again on a new one,
        and a dead server is replaced and the shards it failed run again."""
        import ray
        from ray.exceptions import RayActorError

        self._version += 1
        weights = ray.put({k: v.detach().cpu() for k, v in policy.state_dict().items()})
        shards = {w: list(range(w, len(contexts), len(self.workers))) for w in range(len(self.workers))}
        shards = {w: ids for w, ids in shards.items() if ids}
        restarts = 0

        def count_restart(what: str, exc: Exception) -> None:
            nonlocal restarts
            restarts += 1
            if restarts > self.config.max_worker_restarts:
                raise RuntimeError(f"{what} died {restarts} times in one rollout; last: {exc}") from exc

        def load_server(clients: int) -> None:
            while True:
                try:
                    ray.get(self.server.load.remote(self._version, weights, clients))
                    return
                except RayActorError as exc:
                    self._replace_server(exc, count_restart)

        if self.server is not None:
            load_server(len(shards))
        generation_of: dict[int, int] = {}

        def launch(w: int):
            ids = shards[w]
            generation_of[w] = self._server_generation
            served = self.server is not None
            return self.workers[w].run.remote(
                self._version,
                None if served else weights,
                [contexts[i] for i in ids],
                ids,
                seed,
                stochastic,
                self.server,
            )

        pending = {launch(w): w for w in shards}
        results: dict[int, tuple] = {}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            w = pending.pop(done[0])
            try:
                for result in ray.get(done[0]):
                    results[result[0]] = result
            except InferenceServerDied as exc:
                if generation_of[w] == self._server_generation:  # not yet replaced for an earlier failure
                    self._replace_server(exc, count_restart)
                    load_server(len(pending) + 1)
                pending[launch(w)] = w
            except RayActorError as exc:
                count_restart("rollout workers", exc)
                self.worker_restarts += 1
                log.warning(
                    "rollout worker %d died (%s); its %d trials run again on a new worker", w, exc, len(shards[w])
                )
                self.workers[w] = self._new_worker()
                pending[launch(w)] = w
        return results

    def _replace_server(self, exc: Exception, count_restart) -> None:
        import ray

        count_restart("the inference server", exc)
        self.server_restarts += 1
        log.warning("the inference server died (%s); a new one loads the weights and its queries run again", exc)
        ray.kill(self.server)
        self._server_generation += 1
        self.server = self._new_server()

    def close(self) -> None:
        import ray

        for worker in self.workers:
            ray.kill(worker)
        self.workers = []
        if self.server is not None:
            ray.kill(self.server)
            self.server = None
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
