"""`ript eval`: the standard LIBERO evaluation of a policy checkpoint or of the scripted expert."""

from __future__ import annotations

import argparse
from pathlib import Path

from ript.cli.common import add_expert_argument, add_suite_arguments, parse_task_ids


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_suite_arguments(parser)
    parser.add_argument(
        "--episodes", type=int, default=50, help="episodes per task, from benchmark init states 0.. (standard: 50)"
    )
    parser.add_argument(
        "--states",
        choices=["benchmark", "validation", "contexts"],
        default="benchmark",
        help="what the episodes start from: the benchmark's init states (the standard protocol, default), "
        "fresh placements drawn as `ript train` draws its validation placements (~1-2 s each; with the "
        "run's --context-seed the first eval_episodes_per_task of each task are the ones it chose its best "
        "on), or the first --episodes contexts per task of the --contexts file",
    )
    parser.add_argument(
        "--contexts",
        type=Path,
        default=None,
        help="--states contexts: a contexts file (`ript contexts`, or a run's contexts.npz: the placements "
        "it trained on, against validation placements for the gap between the two)",
    )
    parser.add_argument(
        "--context-seed",
        type=int,
        default=0,
        help="--states validation: the training run's context_seed (default 0); placements are drawn with it + "
        "1000 (other seeds than that run's training contexts), apart from the benchmark's states",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="VLA checkpoint (from `ript sft` or `ript train`); default: the scripted expert. "
        "Its own config sets the render mode and image size",
    )
    parser.add_argument("--state-only", action="store_true", help="no cameras (the expert; ignored with --checkpoint)")
    parser.add_argument("--image-size", type=int, default=128, help="camera height = width (default 128)")
    add_expert_argument(parser)
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    parser.add_argument(
        "--execute-steps",
        type=int,
        default=None,
        help="actions executed per policy query (default: the checkpoint's; 1 = re-plan every step)",
    )
    parser.add_argument(
        "--knob",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a sampling knob for this evaluation (repeatable; YAML values), e.g. --stochastic --knob "
        "noise_correlation=0.9 --knob correlate_across_queries=true: the sampled success a RIPT run "
        "with that exploration would start from. Knobs: ript.policies.vla.SAMPLING_KNOBS",
    )
    parser.add_argument(
        "--videos",
        type=int,
        default=0,
        metavar="N",
        help="film up to N episodes per task (agentview, upright, mp4 under <out>/<suite>/videos); renders "
        "the cameras even for a state policy, which slows the run",
    )
    parser.add_argument(
        "--videos-of",
        choices=["failed", "all"],
        default="failed",
        help="which episodes --videos films (default: failed ones, in benchmark-state order)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/eval"), help="report folder root (default runs/eval)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs, scripts)")


def parse_knobs(assignments: list[str]) -> dict:
    """['noise_correlation=0.9', ...] -> {'noise_correlation': 0.9, ...}: values parsed as `--set`
    parses them (`set_dotted`: YAML, '1e-5' a number)."""
    from ript.core.config_io import set_dotted

    knobs: dict = {}
    for assignment in assignments:
        if "=" not in assignment or not assignment.partition("=")[0].strip():
            raise SystemExit(f"--knob takes NAME=VALUE, got {assignment!r}")
        set_dotted(knobs, assignment)
    return knobs


def contexts_from_file(path: Path | None, suite: str, task_ids: list[int], episodes: int) -> list:
    """The first `episodes` contexts of each task in the file, in its order; SystemExit saying what is
    missing when the file lacks them."""
    from ript.sim.contexts import load_contexts

    if path is None:
        raise SystemExit("--states contexts needs --contexts FILE")
    if not path.is_file():
        raise SystemExit(f"--contexts {path}: no such file")
    try:
        held = load_contexts(path)
    except Exception as exc:  # not a contexts file: a clear refusal, not a traceback
        raise SystemExit(f"--contexts {path}: not a contexts file ({type(exc).__name__}: {exc})") from exc
    chosen = []
    for task_id in task_ids:
        of_task = [c for c in held if c.suite == suite and c.task_id == task_id]
        if len(of_task) < episodes:
            raise SystemExit(
                f"--contexts {path} holds {len(of_task)} contexts of {suite} task {task_id}, "
                f"--episodes asks for {episodes}"
            )
        chosen += of_task[:episodes]
    return chosen


def run(args: argparse.Namespace) -> int:
    from ript.sim.env import LiberoEnvConfig, num_tasks
    from ript.sim.eval import checkpoint_agent, evaluate, markdown_table, save_report
    from ript.sim.expert import ExpertConfig, ScriptedExpert

    env = {"render": not args.state_only, "image_size": args.image_size}
    if args.checkpoint is None:
        agent = ScriptedExpert(ExpertConfig(memoryless=args.memoryless_expert))
        name = "memoryless scripted expert" if args.memoryless_expert else "scripted expert"
    else:
        knobs = parse_knobs(args.knob)
        agent, env, _ = checkpoint_agent(args.checkpoint, args.stochastic, args.seed, args.execute_steps, knobs)
        name = args.checkpoint.name
    if args.videos < 0:
        raise SystemExit(f"--videos must be >= 0, got {args.videos}")
    if args.videos:
        env["render"] = True
    env_config = LiberoEnvConfig(suite=args.suite, **env)
    task_ids = parse_task_ids(args.tasks) or list(range(num_tasks(args.suite)))  # None: every task
    contexts, states = None, "benchmark init states"
    if args.states == "validation":
        from ript.sim.contexts import validation_contexts

        contexts = validation_contexts(
            args.suite, task_ids, args.episodes, args.context_seed, apart_from=[], progress=not args.no_progress
        )
        states = f"fresh validation placements, context_seed {args.context_seed}"
    elif args.states == "contexts":
        contexts = contexts_from_file(args.contexts, args.suite, task_ids, args.episodes)
        states = f"contexts of {args.contexts}"
    elif args.contexts is not None:
        raise SystemExit(f"--contexts is read with --states contexts only (--states is {args.states})")
    report = evaluate(
        agent,
        args.suite,
        task_ids,
        args.episodes,
        num_envs=args.num_envs,
        env_config=env_config,
        policy_name=name,
        progress=not args.no_progress,
        videos=args.videos,
        videos_of=args.videos_of,
        video_dir=args.out / args.suite / "videos",
        contexts=contexts,
        states=states,
    )
    paths = save_report(report, args.out / args.suite)
    print("\n" + markdown_table(report))
    if report.videos:
        print(f"{len(report.videos)} videos in {args.out / args.suite / 'videos'}")
    print(
        f"wrote {', '.join(str(p) for p in paths.values())} ({report.wall_time_s:.0f} s, "
        f"{report.worker_restarts} worker restarts)"
    )
    return 0
