"""The Ray rollout backend on a local Ray cluster bound to 127.0.0.1, against real LIBERO: for the
same seed it gives the trials the local backend gives (rewards, actions scored, log-probs), with
any worker count and with the policy in each worker or in one inference server, and a worker killed
mid-trial (SIGKILL) or a server killed mid-rollout is replaced without losing or doubling a trial."""

from __future__ import annotations

import pytest
import torch

from ript.policies.config import VLAConfig
from ript.policies.libero_data import state_dim as libero_state_dim
from ript.policies.sft import libero_policy_inputs
from ript.policies.vla import build_policy
from ript.sim.contexts import evaluation_contexts
from ript.sim.env import LiberoEnvConfig
from ript.sim.rollout_source import LiberoRolloutSource
from ript.sim.vector_env import VectorEnv

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")

SUITE, STEPS, K = "libero_spatial", 16, 2


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    config = VLAConfig(
        input_mode="state",
        state_dim=libero_state_dim(LiberoEnvConfig().object_state_dim),
        use_language=False,
        hidden_dim=32,
        num_layers=1,
        num_heads=2,
        chunk_size=4,
        execute_steps=2,
        regression={"exploration_scale": 3.0},
    )
    policy = build_policy(config).eval()
    contexts = evaluation_contexts(SUITE, [0], 3)  # fixed states: no placement draws needed
    policy_config = policy.config

    def featurize(obs, context):
        return libero_policy_inputs(obs, policy_config, None)

    env_config = LiberoEnvConfig(suite=SUITE, render=False, max_steps=STEPS)
    return policy, contexts, featurize, env_config


def flatten(groups):
    trials = [trial for group in groups for trial in group]
    return (
        [t.reward for t in trials],
        [t.data.scored for t in trials],
        [t.data.log_probs for t in trials],
        [t.data.num_steps for t in trials],
    )


def assert_same(a, b, atol: float = 1e-4):
    rewards_a, scored_a, logp_a, steps_a = a
    rewards_b, scored_b, logp_b, steps_b = b
    assert len(rewards_a) == len(rewards_b) and rewards_a == rewards_b and steps_a == steps_b
    for x, y in zip(scored_a, scored_b):
        torch.testing.assert_close(x, y, atol=atol, rtol=1e-4)
    for x, y in zip(logp_a, logp_b):
        torch.testing.assert_close(x, y, atol=10 * atol, rtol=1e-4)


def test_ray_gives_the_local_trials_with_any_worker_count(cluster, setup):
    from ript.sim.ray_rollout import RayConfig, RayRolloutSource

    policy, contexts, featurize, env_config = setup
    with VectorEnv(2, env_config) as vec:
        local_source = LiberoRolloutSource(vec, contexts, contexts, featurize, 2)
        local = flatten(local_source.rollout(policy, contexts, K, seed=7))
        local_eval = local_source.evaluate(policy)
    assert len(local[0]) == len(contexts) * K and all(steps == STEPS for steps in local[3])
    for workers in (1, 2):
        source = RayRolloutSource(policy, contexts, contexts, featurize, 2, env_config, RayConfig(num_workers=workers))
        try:
            assert_same(flatten(source.rollout(policy, contexts, K, seed=7)), local)
            assert source.evaluate(policy) == local_eval
            if workers == 2:  # and another seed gives other trials
                other = flatten(source.rollout(policy, contexts, K, seed=8))
                assert not torch.allclose(other[1][0], local[1][0])
        finally:
            source.close()


def crash_once(featurize, marker, after_calls: int):
    """featurize, except that the first worker process to call it `after_calls` times SIGKILLs itself
    (mid-trial, whatever the machine's speed); the marker file makes it happen once per test."""
    calls = [0]

    def featurize_or_die(obs, context):
        import os
        import signal

        calls[0] += 1
        if calls[0] == after_calls and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return featurize(obs, context)

    return featurize_or_die


def test_a_killed_worker_is_replaced_and_no_trial_is_lost_or_doubled(cluster, setup, tmp_path):
    from ript.sim.ray_rollout import RayConfig, RayRolloutSource

    policy, contexts, featurize, env_config = setup
    reference_source = RayRolloutSource(policy, contexts, [], featurize, 2, env_config, RayConfig(num_workers=2))
    try:
        reference = flatten(reference_source.rollout(policy, contexts, K, seed=3))
    finally:
        reference_source.close()
    marker = tmp_path / "crashed"
    source = RayRolloutSource(
        policy, contexts, [], crash_once(featurize, marker, after_calls=10), 2, env_config, RayConfig(num_workers=2)
    )
    try:
        again = flatten(source.rollout(policy, contexts, K, seed=3))
        assert marker.exists() and source.worker_restarts == 1  # a worker died mid-trial and was replaced
        assert_same(again, reference)  # every trial once, as if nothing happened
    finally:
        source.close()


@pytest.fixture(scope="module")
def local_reference(setup):
    """The local backend's trials (seed 7) and evaluation."""
    policy, contexts, featurize, env_config = setup
    with VectorEnv(2, env_config) as vec:
        source = LiberoRolloutSource(vec, contexts, contexts, featurize, 2)
        return flatten(source.rollout(policy, contexts, K, seed=7)), source.evaluate(policy)


def served(workers: int) -> dict:
    # 2 CPUs in the test cluster: the workers share one, the server takes the other. A long
    # gathering window: a batch waits for every running worker however loaded the machine is.
    return {"num_workers": workers, "cpus_per_worker": 1.0 / workers, "inference": "server", "gather_window_ms": 1000}


def test_an_inference_server_gives_the_local_trials(cluster, setup, local_reference):
    from ript.sim.ray_rollout import RayConfig, RayRolloutSource

    policy, contexts, featurize, env_config = setup
    local, local_eval = local_reference
    source = RayRolloutSource(policy, contexts, contexts, featurize, 2, env_config, RayConfig(**served(2)))
    try:
        assert_same(flatten(source.rollout(policy, contexts, K, seed=7)), local)
        assert source.evaluate(policy) == local_eval
        stats = ray.get(source.server.statistics.remote())
        assert stats["max_queries"] == 2 and stats["max_rows"] == 2, stats  # both workers' rows in one batch
        assert stats["batches"] < stats["queries"], stats
    finally:
        source.close()


def kill_server_once(featurize, marker, after_calls: int):
    """featurize, except that the first worker to call it `after_calls` times kills the inference
    server (found by its name) mid-rollout; the marker file makes it happen once per test."""
    calls = [0]

    def featurize_or_kill(obs, context):
        calls[0] += 1
        if calls[0] == after_calls and not marker.exists():
            marker.touch()
            for name in ray.util.list_named_actors():
                if name.startswith("ript-inference-"):
                    ray.kill(ray.get_actor(name))
        return featurize(obs, context)

    return featurize_or_kill


def test_a_killed_inference_server_is_replaced_and_no_trial_is_lost_or_doubled(
    cluster, setup, local_reference, tmp_path
):
    from ript.sim.ray_rollout import RayConfig, RayRolloutSource

    policy, contexts, featurize, env_config = setup
    marker = tmp_path / "killed"
    source = RayRolloutSource(
        policy, contexts, [], kill_server_once(featurize, marker, 5), 2, env_config, RayConfig(**served(2))
    )
    try:
        again = flatten(source.rollout(policy, contexts, K, seed=7))
        assert marker.exists() and source.server_restarts == 1 and source.worker_restarts == 0
        assert_same(again, local_reference[0])
    finally:
        source.close()


def test_the_inference_server_refuses_stale_weights(cluster, setup):
    from ript.policies.checkpoint import live_config
    from ript.sim.ray_rollout import InferenceServer, StaleWeights

    policy = setup[0]
    server = ray.remote(num_cpus=0)(InferenceServer).remote("vla", live_config(policy), 0.002, 1)
    try:
        weights = {k: v.detach().cpu() for k, v in policy.state_dict().items()}
        ray.get(server.load.remote(2, weights, 1))
        row = {"observation.state": torch.zeros(1, policy.config.state_dim)}
        state = [torch.Generator().manual_seed(0).get_state()]
        sample, _ = ray.get(server.sample.remote(2, row, state))
        assert sample.actions.shape == (1, policy.chunk_size, 7)
        with pytest.raises(StaleWeights, match="version 1"):
            ray.get(server.sample.remote(1, row, state))
        with pytest.raises(StaleWeights, match="older"):
            ray.get(server.load.remote(1, weights, 1))
    finally:
        ray.kill(server)


def test_an_unreachable_cluster_is_named_at_once():
    import time

    from ript.core.distributed import free_loopback_port
    from ript.sim.ray_rollout import check_reachable

    port = free_loopback_port()  # nothing listens on it
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        check_reachable(f"127.0.0.1:{port}")
    assert time.monotonic() - started < 5.0
    with pytest.raises(ValueError, match="host:port"):
        check_reachable("head-without-port")


def test_noise_linked_across_queries_is_recorded_and_served_alike(cluster, setup):
    # correlate_across_queries: each query's inputs carry the trial's previous query, in LIBERO
    # trials run here and through an inference server alike; every recorded trial re-scores at
    # ratio 1 (the link is recorded with it), and unlinked it would score otherwise.
    import copy

    from ript.sim.ray_rollout import RayConfig, RayRolloutSource

    policy, contexts, featurize, env_config = setup
    linked = copy.deepcopy(policy)
    linked.noise_correlation, linked.correlate_across_queries = 0.9, True
    with VectorEnv(2, env_config) as vec:
        local = LiberoRolloutSource(vec, contexts, contexts, featurize, 2).rollout(linked, contexts[:1], K, seed=7)
    trials = [trial.data for group in local for trial in group]
    for trajectory in trials:
        assert trajectory.obs["previous_query/continues"].tolist() == [False] + [True] * (STEPS // 2 - 1)
        torch.testing.assert_close(linked.log_prob(trajectory.obs, trajectory.scored), trajectory.log_probs)
        unlinked = {k: v for k, v in trajectory.obs.items() if not k.startswith("previous_query/")}
        assert not torch.allclose(linked.log_prob(unlinked, trajectory.scored), trajectory.log_probs)
    source = RayRolloutSource(linked, contexts, contexts, featurize, 2, env_config, RayConfig(**served(2)))
    try:
        assert_same(flatten(source.rollout(linked, contexts[:1], K, seed=7)), flatten(local))
    finally:
        source.close()
