"""The data-parallel LOOP update (ript.core.distributed): 2 gloo processes on loopback take the
update one process takes, for every loss normalisation, minibatches that do not split evenly
over the ranks (one leaves a rank without rows) and a target_kl stop."""

from __future__ import annotations

import datetime

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ript.core.distributed import free_loopback_port, join_loopback_group
from ript.core.loop import LoopBatch, LoopConfig, LoopUpdater

WORLD_SIZE = 2
CHUNK, ACTION_DIM = 3, 2
# name -> LoopConfig overrides. 9 rows in minibatches of 4 ends with a 1-row minibatch (rank 1 has
# none of it); 9 rows in minibatches of 5 splits 3/2 and 2/2.
CASES = {
    "token": dict(loss_normalization="token", minibatch_size=4, target_kl=None),
    "trial": dict(loss_normalization="trial", minibatch_size=5, target_kl=None),
    "query": dict(loss_normalization="query", minibatch_size=4, target_kl=None),
    "trial_kl_stop": dict(loss_normalization="trial", minibatch_size=4, target_kl=0.05),
}


def make_update(case: str, data_parallel=None):
    """A seeded Gaussian policy over action chunks, its batch and updater (the same in every process)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, CHUNK * ACTION_DIM))
    log_std = torch.nn.Parameter(torch.full((ACTION_DIM,), -0.5))
    parameters = [*net.parameters(), log_std]

    def log_prob(obs, scored):
        mean = net(obs["state"]).view(-1, CHUNK, ACTION_DIM)
        return torch.distributions.Normal(mean, log_std.exp()).log_prob(scored).sum(-1)  # [N, CHUNK]

    # 3 trials of 4, 2 and 3 queries; trial 1 is cut short (masked tail), one query of trial 2 is padding.
    trial_of_row = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2])
    rows = len(trial_of_row)
    obs = {"state": torch.randn(rows, 3)}
    scored = torch.randn(rows, CHUNK, ACTION_DIM)
    mask = torch.ones(rows, CHUNK, dtype=torch.bool)
    mask[5, 1:] = False
    mask[7] = False
    with torch.no_grad():
        logp_old = log_prob(obs, scored) + 0.05 * torch.randn(rows, CHUNK)
    valid_per_trial = torch.zeros(3).index_add_(0, trial_of_row, mask.sum(1).float())
    batch = LoopBatch(
        obs=obs,
        scored=scored,
        logp_old=logp_old,
        mask=mask,
        advantages=torch.tensor([1.0, -0.5, -0.5])[trial_of_row],
        weights=1.0 / valid_per_trial[trial_of_row],
    )
    if data_parallel is not None and data_parallel.rank != 0:
        with torch.no_grad():  # rank 0's weights must reach the others
            for p in parameters:
                p.add_(1.0)
    updater = LoopUpdater(
        log_prob,
        parameters,
        torch.optim.Adam(parameters, lr=0.005),
        LoopConfig(ppo_epochs=3, max_grad_norm=0.5, **CASES[case]),
        generator=torch.Generator().manual_seed(1),
        data_parallel=data_parallel,
    )
    return updater, batch, parameters


def run_all_cases(data_parallel=None) -> dict:
    results = {}
    for case in CASES:
        updater, batch, parameters = make_update(case, data_parallel)
        stats = updater.update(batch)
        results[case] = ([p.detach().clone() for p in parameters], stats)
    return results


def rank_main(rank: int, port: int, out_dir: str) -> None:
    data_parallel = join_loopback_group(rank, WORLD_SIZE, port, datetime.timedelta(seconds=60))
    try:
        torch.save(run_all_cases(data_parallel), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ddp")
    mp.spawn(rank_main, args=(free_loopback_port(), str(out_dir)), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(out_dir / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]
    return run_all_cases(), ranks


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_take_the_single_process_step(results, case):
    single, ranks = results
    single_params, single_stats = single[case]
    (params0, stats0), (params1, stats1) = ranks[0][case], ranks[1][case]
    # Lock-step: the ranks hold exactly the same parameters and report the same statistics.
    assert all(torch.equal(a, b) for a, b in zip(params0, params1))
    assert stats0 == stats1
    # ...and they are the single-process update's, up to float summation order.
    assert any(not torch.equal(a, b) for a, b in zip(single_params, make_update(case)[2])), "the update moved nothing"
    for mine, reference in zip(params0, single_params):
        torch.testing.assert_close(mine, reference, rtol=0, atol=1e-6)
    assert stats0.keys() == single_stats.keys()
    for key, value in single_stats.items():
        assert stats0[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_the_kl_stop_case_stops_mid_update(results):
    single, _ = results
    stats = single["trial_kl_stop"][1]
    assert stats["stats/stopped_early"] == 1.0 and stats["stats/num_minibatches"] >= 2


def reach_config():
    from ript.sim.toy_task import ReachTrainConfig

    config = ReachTrainConfig()
    config.train.iterations = 1
    config.train.eval_every = 0
    config.train.sampler.batch_size = 32
    config.train.loop.minibatch_size = 15  # 32 rows or more: minibatches that do not split evenly
    # an annealed learning rate (rank 0 sets it from its env steps; the follower must take it)
    config.train.max_env_steps, config.train.final_learning_rate = 1024, config.train.learning_rate / 10
    return config


def reach_rank_main(rank: int, port: int, out_dir: str) -> None:
    """Rank 0 runs the reach task's RiptTrainer; rank 1 follows its updates."""
    from ript.core.learner import UpdateFollower
    from ript.sim.toy_task import make_reach_policy, make_reach_trainer

    data_parallel = join_loopback_group(rank, WORLD_SIZE, port, datetime.timedelta(seconds=60))
    try:
        if rank == 0:
            trainer = make_reach_trainer(
                reach_config(), f"{out_dir}/run", tensorboard=False, data_parallel=data_parallel
            )
            history = trainer.run(progress=False)
            trainer.close()
            torch.save((trainer.policy.state_dict(), history), f"{out_dir}/rank0.pt")
        else:
            policy = make_reach_policy(reach_config())
            with torch.no_grad():  # rank 0's weights must reach the follower
                for p in policy.parameters():
                    p.add_(1.0)
            updates = UpdateFollower(policy, reach_config().train, data_parallel).run()
            torch.save((policy.state_dict(), updates), f"{out_dir}/rank1.pt")
    finally:
        dist.destroy_process_group()


def test_followers_take_every_update_of_a_reach_run(tmp_path):
    from ript.sim.toy_task import make_reach_trainer

    mp.spawn(reach_rank_main, args=(free_loopback_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    (leader_state, history), (follower_state, updates) = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    single = make_reach_trainer(reach_config(), tmp_path / "single", tensorboard=False)
    single_history = single.run(progress=False)
    single.close()

    assert updates == reach_config().train.iterations
    for key, value in leader_state.items():
        assert torch.equal(follower_state[key], value), key
        # Looser than above: this run takes 12 Adam steps at lr 1e-2, and Adam scales each
        # gradient element to a step of about lr, also a near-zero one whose rounding differs
        # between one and two shards (measured: up to 1e-4 relative in the first minibatch).
        torch.testing.assert_close(value, single.policy.state_dict()[key], rtol=0, atol=5e-5)
    for row, single_row in zip(history, single_history, strict=True):
        for key, value in single_row.items():
            if isinstance(value, str):
                assert row[key] == value, key
            elif not key.startswith("time/"):
                assert row[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
