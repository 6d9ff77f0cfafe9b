"""Rollout throughput (local backend, Ray with the policy in each worker, Ray with one inference
server), the costs one RIPT iteration is made of, and a scaling model to 64 workers built from them.

    python bench/scale.py --out docs/bench                       # a random state policy (VLAConfig's default size)
    python bench/scale.py --checkpoint runs/sft/<time>/policy.pt --out docs/bench

Measured (one run, one seed, on this machine):
  * the same rollout call (contexts x K trials, same seed, so the same trials) with the local
    backend at 1 and 2 LIBERO worker processes and with the Ray backend at 1 and 2 rollout workers,
    `ray.inference` worker and server (a local Ray cluster on 127.0.0.1), each after a warm-up call
    (env creation, actor start-up and the first weights transfer are not timed);
  * one env step of the simulator, featurising one observation, one policy query in-process at
    batch 1..64, one query to an InferenceServer actor at batch 1 (its round trip), an empty actor
    call, putting the policy's state dict in the object store and getting it in another process,
    the pickled size of a trial's trajectory, and the LOOP update of the timed call's trials.
Modelled (bench/scale.py `model_iteration`, from those costs): the wall time of one iteration (weights
out, rollout, trajectories back, LOOP update) and its parallel efficiency at 1..64 workers; the
assumptions are printed with the table and written with it (scale_model.md).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import pickle
import platform
import statistics
import time
from pathlib import Path

import torch

os.environ.setdefault("MUJOCO_GL", "egl")

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
MODEL_WORKERS = (1, 2, 4, 8, 16, 32, 64)


def policy_and_featurize(checkpoint: Path | None):
    from ript.policies.checkpoint import load_checkpoint
    from ript.policies.config import VLAConfig
    from ript.policies.encoders import instruction_encoder
    from ript.policies.libero_data import state_dim
    from ript.policies.sft import libero_policy_inputs
    from ript.policies.vla import build_policy
    from ript.sim.env import LiberoEnvConfig

    if checkpoint is None:
        torch.manual_seed(0)
        # the state variant at VLAConfig's default size (hidden 128, 4 layers, chunk 8); random
        # weights: the cost of a query or an update does not depend on their values
        config = VLAConfig(
            input_mode="state",
            state_dim=state_dim(LiberoEnvConfig().object_state_dim),
            use_language=False,
            regression={"exploration_scale": 3.0},
        )
        policy, embeddings = build_policy(config).eval(), None
    else:
        policy, payload = load_checkpoint(checkpoint)
        embeddings = instruction_encoder(policy, payload.get("instruction_embeddings"))
    config = policy.config
    if config.input_mode != "state":
        raise SystemExit("bench/scale.py times state-mode policies (no rendering)")
    cache: dict = {}

    def featurize(obs, context):
        if embeddings is not None and context.instruction not in cache:
            cache[context.instruction] = embeddings(context.instruction)
        return libero_policy_inputs(obs, config, cache.get(context.instruction))

    return policy, featurize


def timed(source, policy, contexts, k: int, seed: int, warm_trials: int):
    # warm-up: envs built, actors started, weights sent (one trial per env is enough)
    source.rollout(policy, contexts[:1], max(2, warm_trials), seed + 1)
    start = time.perf_counter()
    groups = source.rollout(policy, contexts, k, seed)
    wall = time.perf_counter() - start
    trials = [t for group in groups for t in group]
    return wall, sum(t.data.num_steps for t in trials), len(trials), groups


def median_s(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Probe:
    """A Ray actor that does nothing (the cost of a call) or gets an object (a weights transfer)."""

    def nothing(self) -> None:
        return None

    def fetch(self, references: list) -> int:
        import ray

        state = ray.get(references[0])
        return sum(v.numel() for v in state.values())


def component_costs(policy, featurize, contexts, env_config, groups, rounds: int) -> dict:
    """Each cost the scaling model is built from, measured once here (seconds unless named)."""
    import numpy as np
    import ray

    from ript.core.learner import TrainConfig, make_updater
    from ript.core.loop import LoopConfig
    from ript.core.sampler import Group
    from ript.core.trials import build_loop_batch
    from ript.sim.ray_rollout import InferenceServer
    from ript.sim.rollout_source import sample_rows
    from ript.sim.vector_env import InProcessVectorEnv

    costs: dict = {}
    vec = InProcessVectorEnv(1, env_config)
    try:
        obs = vec.reset(contexts[:1])[0]
        observations, step_times = [obs], []
        for _ in range(rounds * 10):
            start = time.perf_counter()
            step = vec.step(np.zeros((1, 7)))
            step_times.append(time.perf_counter() - start)
            observations.append(step.obs[0] if not step.dones[0] else vec.reset(contexts[:1])[0])
        costs["sim_step_s"] = statistics.mean(step_times)
    finally:
        vec.close()
    costs["featurize_s"] = median_s(lambda: featurize(observations[-1], contexts[0]), rounds * 5)

    rows = [featurize(o, contexts[0]) for o in observations[:64]]
    inference = {}
    with torch.no_grad():
        for size in BATCH_SIZES:
            batch = {k: torch.as_tensor(np.stack([rows[n % len(rows)][k] for n in range(size)])) for k in rows[0]}
            generators = [torch.Generator().manual_seed(n) for n in range(size)]
            inference[size] = median_s(lambda batch=batch, gs=generators: sample_rows(policy, batch, gs), rounds)
    costs["inference_s_by_batch"] = inference

    weights = {k: v.detach().cpu() for k, v in policy.state_dict().items()}
    costs["weights_bytes"] = sum(v.numel() * v.element_size() for v in weights.values())
    costs["weights_put_s"] = median_s(lambda: ray.put(weights), rounds)
    probe = ray.remote(num_cpus=0)(Probe).remote()
    ray.get(probe.nothing.remote())
    costs["actor_call_s"] = median_s(lambda: ray.get(probe.nothing.remote()), rounds * 5)
    reference = ray.put(weights)
    ray.get(probe.fetch.remote([reference]))
    fetch = median_s(lambda: ray.get(probe.fetch.remote([ray.put(weights)])), rounds)
    costs["weights_get_s"] = max(0.0, fetch - costs["actor_call_s"] - costs["weights_put_s"])
    ray.kill(probe)

    server = ray.remote(num_cpus=0)(InferenceServer).remote(
        getattr(policy, "policy_type", "vla"), _live_config(policy), 0.002, 1
    )
    ray.get(server.load.remote(1, reference, 1))
    one = {k: torch.as_tensor(np.stack([rows[0][k]])) for k in rows[0]}
    state = [torch.Generator().manual_seed(0).get_state()]
    ray.get(server.sample.remote(1, one, state))
    costs["server_query_s_b1"] = median_s(lambda: ray.get(server.sample.remote(1, one, state)), rounds * 5)
    ray.kill(server)

    trials = [t for group in groups for t in group]
    costs["trajectory_bytes"] = statistics.mean(len(pickle.dumps(t.data)) for t in trials)
    # the LOOP update of the timed call's trials, every epoch run (no KL stop: the full cost);
    # rewards alternate within each group so every advantage is non-zero
    learner_policy = copy.deepcopy(policy)
    updater = make_updater(learner_policy, TrainConfig(loop=LoopConfig(target_kl=None)))
    loop_groups = []
    for g, group in enumerate(groups):
        for k, trial in enumerate(group):
            trial.reward = float(k % 2)
        loop_groups.append(Group(g, g, None, list(group)))
    loop_batch, _ = build_loop_batch(loop_groups)
    costs["update_s"] = median_s(lambda: updater.update(loop_batch), max(1, rounds // 5))
    costs["update_queries"] = len(loop_batch)
    costs["update_epochs"] = updater.config.ppo_epochs
    costs["update_minibatch"] = updater.config.minibatch_size
    costs.update(data_parallel_costs(policy, loop_batch, max(1, rounds // 5)))
    return costs


def data_parallel_costs(policy, loop_batch, rounds: int) -> dict:
    """The same LOOP update shared by 2 gloo ranks on 127.0.0.1 (one torch thread each, so the two
    cores as ranks against the single process above), and one all-reduce of the gradient's size."""
    import torch.multiprocessing as mp

    from ript.core.distributed import free_loopback_port

    port = free_loopback_port()
    context = mp.get_context("spawn")
    results = context.Queue()
    payload = (getattr(policy, "policy_type", "vla"), _live_config(policy), policy.state_dict(), loop_batch, rounds)
    ranks = [context.Process(target=_data_parallel_rank, args=(r, 2, port, payload, results)) for r in range(2)]
    for process in ranks:
        process.start()
    measured = results.get(timeout=1800)
    for process in ranks:
        process.join(60)
    return measured


def _data_parallel_rank(rank: int, world: int, port: int, payload, results) -> None:
    import datetime

    import torch.distributed as dist

    from ript.core.distributed import join_loopback_group
    from ript.core.learner import TrainConfig, make_updater
    from ript.core.loop import LoopConfig
    from ript.core.registry import POLICY_TYPES

    torch.set_num_threads(1)
    data_parallel = join_loopback_group(rank, world, port, datetime.timedelta(minutes=30))
    policy_type, config, state, loop_batch, rounds = payload
    policy = POLICY_TYPES.get(policy_type)(config)
    policy.load_state_dict(state)
    updater = make_updater(policy, TrainConfig(loop=LoopConfig(target_kl=None)), data_parallel)

    def timed(fn, repeats: int) -> float:
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            dist.barrier()
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    update_s = timed(lambda: updater.update(loop_batch), rounds)
    gradient = torch.zeros(sum(p.numel() for p in policy.parameters() if p.requires_grad))
    allreduce_s = timed(lambda: dist.all_reduce(gradient), 20)
    if rank == 0:
        results.put(
            {
                "update_s_2_ranks": update_s,
                "allreduce_s_2_ranks": allreduce_s,
                "gradient_bytes": gradient.numel() * gradient.element_size(),
            }
        )
    dist.destroy_process_group()


def _live_config(policy) -> dict:
    from ript.policies.checkpoint import live_config

    return live_config(policy)


def inference_time(costs: dict, rows: int) -> float:
    """A query of `rows` rows: measured at the batch sizes measured, linear between and beyond them."""
    table = {int(k): v for k, v in costs["inference_s_by_batch"].items()}
    sizes = sorted(table)
    if rows in table:
        return table[rows]
    low = max([s for s in sizes if s < rows], default=sizes[0])
    high = min([s for s in sizes if s > rows], default=sizes[-1])
    if low == high:  # beyond the largest measured batch: the last segment's per-row slope
        low, high = sizes[-2], sizes[-1]
    slope = (table[high] - table[low]) / (high - low)
    return table[low] + slope * (rows - low)


def model_iteration(costs: dict, workers: int, placement: str, a: argparse.Namespace, learner: str = "single") -> dict:
    """One iteration's wall time with `workers` rollout workers (each `a.envs_per_worker` envs);
    learner 'single' (the update on the driver) or 'data-parallel' (one learner rank per machine)."""
    envs = a.envs_per_worker
    queries_per_trial = math.ceil(a.model_steps / a.execute_steps)
    waves = math.ceil(a.model_trials / (workers * envs))  # trials one env runs, one after another
    machines = math.ceil(workers / a.workers_per_machine)
    bandwidth = a.bandwidth_gbit * 1e9 / 8
    remote_machines = machines - 1  # the driver's machine gets its objects from shared memory
    stepping = a.execute_steps * envs * costs["sim_step_s"] + envs * costs["featurize_s"]
    if placement == "worker":
        query = inference_time(costs, envs)
        copies = remote_machines  # one copy of the weights per machine (the object store shares it)
    else:
        rpc = max(0.0, costs["server_query_s_b1"] - inference_time(costs, 1))
        # lock-step: every worker's query waits for the one batch of all workers' rows
        query = rpc + inference_time(costs, workers * envs)
        copies = 1 if machines > 1 else 0  # the server's machine
    rollout = waves * queries_per_trial * (stepping + query)
    broadcast = costs["weights_put_s"] + costs["weights_get_s"] + copies * costs["weights_bytes"] / bandwidth
    dispatch = workers * costs["actor_call_s"]
    results = a.model_trials * costs["trajectory_bytes"] * (remote_machines / machines) / bandwidth
    queries = a.model_trials * queries_per_trial
    update = costs["update_s"] * queries / costs["update_queries"]
    if learner == "data-parallel" and machines > 1:
        # the 2-rank speed-up measured here (its loopback all-reduces included), assumed to hold per rank
        # at any rank count; each optimizer step's all-reduce also moves a ring's 2 x bytes over the link
        per_rank_efficiency = costs["update_s"] / (2 * costs["update_s_2_ranks"])
        steps = costs["update_epochs"] * math.ceil(queries / costs["update_minibatch"])
        update = update / (machines * per_rank_efficiency) + steps * 2 * costs["gradient_bytes"] / bandwidth
    total = broadcast + dispatch + rollout + results + update
    return {
        "placement": placement,
        "learner": learner,
        "workers": workers,
        "machines": machines,
        "broadcast_s": broadcast,
        "dispatch_s": dispatch,
        "rollout_s": rollout,
        "results_s": results,
        "update_s": update,
        "iteration_s": total,
    }


def scaling_model(costs: dict, a: argparse.Namespace) -> list[dict]:
    rows = []
    for placement, learner in (("worker", "single"), ("server", "single"), ("worker", "data-parallel")):
        base = model_iteration(costs, 1, placement, a, learner)
        for n in MODEL_WORKERS:
            row = model_iteration(costs, n, placement, a, learner)
            row["efficiency"] = base["iteration_s"] / (n * row["iteration_s"])
            row["rollout_efficiency"] = base["rollout_s"] / (n * row["rollout_s"])
            rows.append(row)
    return rows


def update_budget(model: list[dict], placement: str, workers: int, target: float) -> float:
    """The longest LOOP update with which `workers` workers still reach `target` efficiency, the rest
    of the iteration as modelled: (R1 + U) / (n (Rn + U)) >= target, R the iteration without update."""
    rows = {r["workers"]: r for r in model if r["placement"] == placement and r["learner"] == "single"}
    one = rows[1]["iteration_s"] - rows[1]["update_s"]
    many = rows[workers]["iteration_s"] - rows[workers]["update_s"]
    return (one - target * workers * many) / (target * workers - 1)


def assumptions(a: argparse.Namespace) -> list[str]:
    return [
        f"{a.model_trials} trials per iteration (e.g. {a.model_trials // 8} groups of K = 8), every one running the "
        f"full {a.model_steps}-step budget (libero_spatial's), {a.execute_steps} actions executed per query",
        f"{a.envs_per_worker} env per worker, {a.workers_per_machine} workers per machine; a step costs what one "
        "step cost here (so do featurising, queries and the update)",
        f"{a.bandwidth_gbit:g} Gbit/s between machines; the weights go to each other machine one after another "
        "(worker placement; no tree broadcast), to the server's machine once (server placement)",
        "the driver starts the workers one call after another; trajectories come back over the same link",
        "server placement: one server on the CPU as measured (a query costs its round trip at batch 1 minus the "
        "compute, plus the compute of every worker's rows in one batch, linear beyond 64 rows); workers in lock-step",
        "single learner: the LOOP update runs on the driver alone; data-parallel learner: one rank per machine, "
        "the per-rank efficiency of the 2-rank update measured here (loopback all-reduces included) at every rank "
        "count, plus 2 x the gradient's bytes over the link per optimizer step (a ring all-reduce); the update's "
        "cost linear in queries, every "
        "epoch run; no evaluation, no rejected groups, no stragglers, no failures",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="a state-mode policy (default: a random one, default size)"
    )
    parser.add_argument("--contexts", type=int, default=4, help="benchmark states of task 0 (default 4)")
    parser.add_argument("--group-size", type=int, default=4, help="K trials per context (default 4)")
    parser.add_argument("--max-steps", type=int, default=120, help="episode budget (default 120)")
    parser.add_argument("--workers", default="1,2", help="worker counts (default 1,2)")
    parser.add_argument("--rounds", type=int, default=20, help="repeats of each component timing (median)")
    parser.add_argument("--model-trials", type=int, default=512, help="trials per modelled iteration (512)")
    parser.add_argument("--model-steps", type=int, default=220, help="steps per modelled trial (220)")
    parser.add_argument("--envs-per-worker", type=int, default=1, help="modelled envs per worker (1)")
    parser.add_argument("--workers-per-machine", type=int, default=2, help="modelled (2: this machine's cores)")
    parser.add_argument("--bandwidth-gbit", type=float, default=10.0, help="modelled network (10 Gbit/s)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    args = parser.parse_args()

    import ray

    from ript.sim.contexts import evaluation_contexts
    from ript.sim.env import LiberoEnvConfig
    from ript.sim.ray_rollout import RayConfig, RayRolloutSource
    from ript.sim.rollout_source import LiberoRolloutSource
    from ript.sim.vector_env import VectorEnv

    torch.set_num_threads(1)
    policy, featurize = policy_and_featurize(args.checkpoint)
    contexts = evaluation_contexts("libero_spatial", [0], args.contexts)
    env_config = LiberoEnvConfig(suite="libero_spatial", render=False, max_steps=args.max_steps)
    execute = policy.config.execute_steps or policy.chunk_size
    args.execute_steps = execute
    counts = [int(n) for n in args.workers.split(",")]
    rows = []
    for n in counts:
        with VectorEnv(n, env_config) as vec:
            source = LiberoRolloutSource(vec, contexts, [], featurize, execute)
            wall, steps, trials, groups = timed(source, policy, contexts, args.group_size, 0, n)
        rows.append({"backend": "local", "inference": "-", "workers": n, "wall_s": wall, "env_steps": steps})
    # logical CPUs: the workers' plus one for the server (on 2 cores, 3 processes share them)
    ray.init(num_cpus=max(counts) + 1, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        for placement in ("worker", "server"):
            for n in counts:
                config = RayConfig(num_workers=n, inference=placement)
                source = RayRolloutSource(policy, contexts, [], featurize, execute, env_config, config)
                try:
                    wall, steps, trials, timed_groups = timed(source, policy, contexts, args.group_size, 0, n)
                    if placement == "server":
                        stats = ray.get(source.server.statistics.remote())
                finally:
                    source.close()
                row = {"backend": "ray", "inference": placement, "workers": n, "wall_s": wall, "env_steps": steps}
                if placement == "server":
                    row["rows_per_batch"] = stats["rows"] / stats["batches"]
                rows.append(row)
                if placement == "worker" and n == counts[0]:
                    groups = timed_groups
        costs = component_costs(policy, featurize, contexts, env_config, groups, args.rounds)
    finally:
        ray.shutdown()
    local = {r["workers"]: r["wall_s"] for r in rows if r["backend"] == "local"}
    for row in rows:
        row["trials"] = trials
        row["env_steps_per_s"] = row["env_steps"] / row["wall_s"]
        row["trials_per_hour"] = 3600 * trials / row["wall_s"]
        row["wall_vs_local"] = row["wall_s"] / local[row["workers"]]
    model = scaling_model(costs, args)
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "ray": ray.__version__,
        "policy": str(args.checkpoint or "random state policy, VLAConfig default size"),
        "parameters": sum(p.numel() for p in policy.parameters()),
        "execute_steps": execute,
        "contexts": args.contexts,
        "group_size": args.group_size,
        "max_steps": args.max_steps,
        "seed": 0,
        "runs": 1,
    }
    throughput = [
        "| backend | inference | workers | wall (s) | env steps | env steps/s | trials/hour | wall / local | rows per server batch |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    throughput += [
        f"| {r['backend']} | {r['inference']} | {r['workers']} | {r['wall_s']:.1f} | {r['env_steps']} | "
        f"{r['env_steps_per_s']:.0f} | {r['trials_per_hour']:.0f} | {r['wall_vs_local']:.2f} | "
        + (f"{r['rows_per_batch']:.2f} |" if "rows_per_batch" in r else "- |")
        for r in rows
    ]
    measured = [
        "| cost | measured |",
        "|---|---:|",
        f"| env step (simulator) | {costs['sim_step_s'] * 1e3:.2f} ms |",
        f"| featurise one observation | {costs['featurize_s'] * 1e3:.3f} ms |",
    ]
    measured += [
        f"| policy query in-process, batch {b} | {t * 1e3:.2f} ms |" for b, t in costs["inference_s_by_batch"].items()
    ]
    measured += [
        f"| InferenceServer query round trip, batch 1 | {costs['server_query_s_b1'] * 1e3:.2f} ms |",
        f"| empty actor call round trip | {costs['actor_call_s'] * 1e3:.2f} ms |",
        f"| weights: state dict size | {costs['weights_bytes'] / 2**20:.2f} MiB |",
        f"| weights: ray.put | {costs['weights_put_s'] * 1e3:.2f} ms |",
        f"| weights: ray.get in another process (same machine) | {costs['weights_get_s'] * 1e3:.2f} ms |",
        f"| trajectory, pickled | {costs['trajectory_bytes'] / 1024:.1f} KiB per trial |",
        f"| LOOP update ({costs['update_epochs']} epochs, {costs['update_queries']} queries) | "
        f"{costs['update_s'] * 1e3:.0f} ms |",
        f"| the same update on 2 gloo ranks (1 thread each, 127.0.0.1) | {costs['update_s_2_ranks'] * 1e3:.0f} ms |",
        f"| all-reduce of the gradient ({costs['gradient_bytes'] / 2**20:.2f} MiB), 2 ranks, loopback | "
        f"{costs['allreduce_s_2_ranks'] * 1e3:.2f} ms |",
    ]
    modelled = [
        "| inference | learner | workers | machines | weights out (s) | rollout (s) | results (s) | update (s) | "
        "iteration (s) | efficiency | rollout efficiency |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    modelled += [
        f"| {r['placement']} | {r['learner']} | {r['workers']} | {r['machines']} | "
        f"{r['broadcast_s'] + r['dispatch_s']:.3f} | "
        f"{r['rollout_s']:.1f} | {r['results_s']:.3f} | {r['update_s']:.1f} | {r['iteration_s']:.1f} | "
        f"{100 * r['efficiency']:.0f} % | {100 * r['rollout_efficiency']:.0f} % |"
        for r in model
    ]
    largest = max(MODEL_WORKERS)
    budgets = {placement: update_budget(model, placement, largest, 0.8) for placement in ("worker", "server")}
    verdict = [
        f"At {largest} workers the modelled efficiency is "
        + ", ".join(
            f"{100 * r['efficiency']:.0f} % ({r['placement']} placement, {r['learner']} learner; rollout alone "
            f"{100 * r['rollout_efficiency']:.0f} %)"
            for r in model
            if r["workers"] == largest
        )
        + ". 80 % would need a LOOP update of at most "
        + ", ".join(f"{max(0.0, b):.1f} s ({p})" for p, b in budgets.items())
        + " per iteration with a single learner; modelled: "
        + ", ".join(f"{r['update_s']:.1f} s ({r['learner']})" for r in model if r["workers"] == largest)
        + "."
    ]
    notes = "\n".join(f"- {line}" for line in assumptions(args))
    print("\n".join(throughput), "\n\n" + "\n".join(measured), "\n\n" + "\n".join(modelled), "\n\n" + notes)
    print("\n" + verdict[0])
    args.out.mkdir(parents=True, exist_ok=True)
    meta_line = ", ".join(f"{k}: {v}" for k, v in meta.items())
    (args.out / "scale.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (args.out / "scale.md").write_text(
        "# Rollout throughput: local backend vs Ray, inference in each worker vs one server (bench/scale.py)\n\n"
        + "\n".join(throughput)
        + "\n\n"
        + meta_line
        + "\n"
    )
    model_args = {
        k: getattr(args, k)
        for k in (
            "model_trials",
            "model_steps",
            "execute_steps",
            "envs_per_worker",
            "workers_per_machine",
            "bandwidth_gbit",
        )
    }
    (args.out / "scale_model.json").write_text(
        json.dumps(
            {"meta": meta, "costs": costs, "assumptions": model_args, "model": model, "update_budget_s": budgets},
            indent=2,
        )
    )
    (args.out / "scale_model.md").write_text(
        "# Scaling model to 64 workers, from measured costs (bench/scale.py)\n\n"
        "## Measured (this machine, one run)\n\n"
        + "\n".join(measured)
        + "\n\n## Modelled: one iteration\n\n"
        + "\n".join(modelled)
        + "\n\nefficiency = iteration time at 1 worker / (workers x iteration time); rollout efficiency: the "
        "same for the rollout alone.\n\n" + verdict[0] + "\n\n## Assumptions\n\n" + notes + "\n\n" + meta_line + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
