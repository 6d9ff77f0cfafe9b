"""hf_vla at real size: query latency, memory and the LoRA LOOP update time of a policy on a
SmolVLM-architecture backbone (256M / 500M configs, random weights built locally with
`ript.policies.hf_backbones`: the cost of a forward does not depend on the weights' values).

Measured per size: `policy.sample` latency at batch 1 and 8 (two 128 px cameras -> the VLM's own
processor, 512 px inputs; median of rounds), peak CUDA memory, one LOOP minibatch (re-score 64
queries with grad through the LoRA language model, backward, Adam step), trainable vs total
parameters and the adapter checkpoint's size. Needs CUDA; without it the script says so and exits 0
(`--device cpu` runs it on the CPU anyway, slowly).

    python bench/hf_vla.py                                   # -> docs/bench/hf_vla.{json,md}
    python bench/hf_vla.py --sizes 256m --rounds 3 --device cpu --out bench/results
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ript.core.constants import OBS_IMAGE_AGENTVIEW, OBS_IMAGE_WRIST, OBS_LANGUAGE, OBS_STATE
from ript.core.loop import LoopBatch, LoopConfig, LoopUpdater
from ript.policies.checkpoint import save_checkpoint
from ript.policies.hf_backbones import build_backbone
from ript.policies.hf_vla import HFVLAConfig, HFVLAPolicy


def observation(policy: HFVLAPolicy, batch: int, device: str) -> dict[str, torch.Tensor]:
    prompt = torch.from_numpy(policy.encode_instructions(["pick up the black bowl and place it on the plate"]))
    image = torch.randint(0, 256, (batch, 128, 128, 3), dtype=torch.uint8)
    return {
        OBS_STATE: torch.randn(batch, 8, device=device),
        OBS_IMAGE_AGENTVIEW: image.to(device),
        OBS_IMAGE_WRIST: image.flip(1).to(device),
        OBS_LANGUAGE: prompt.expand(batch, -1).to(device),
    }


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed_ms(fn, device: str, rounds: int) -> float:
    fn()  # warm-up (kernels, allocator)
    times = []
    for _ in range(rounds):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def bench_size(size: str, args, work: Path) -> dict:
    backbone = build_backbone("smolvlm", size, work / size)
    torch.manual_seed(0)
    config = HFVLAConfig(backbone=str(backbone), chunk_size=8, max_prompt_tokens=160, lora={"rank": args.lora_rank})
    policy = HFVLAPolicy(config).to(args.device).eval()
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    row: dict = {
        "size": size,
        "device": args.device,
        "parameters": sum(p.numel() for p in policy.parameters()),
        "trainable": sum(p.numel() for p in policy.parameters() if p.requires_grad),
        "prompt_tokens": int((policy.encode_instructions(["pick up the black bowl"]) >= 0).sum()),
    }
    for batch in (1, 8):
        obs = observation(policy, batch, args.device)
        row[f"sample_ms_b{batch}"] = timed_ms(lambda obs=obs: policy.sample(obs), args.device, args.rounds)

    obs = observation(policy, args.update_queries, args.device)
    sample = policy.sample(obs)
    params = [p for p in policy.parameters() if p.requires_grad]
    updater = LoopUpdater(
        policy.log_prob,
        params,
        torch.optim.Adam(params, lr=1e-5),
        LoopConfig(ppo_epochs=1, minibatch_size=args.update_queries, loss_normalization="token", target_kl=None),
    )
    batch = LoopBatch(
        obs=obs,
        scored=sample.scored,
        logp_old=sample.log_probs,
        mask=torch.ones_like(sample.log_probs, dtype=torch.bool),
        advantages=torch.linspace(-1, 1, args.update_queries, device=args.device),
    )
    row["loop_minibatch_ms"] = timed_ms(lambda: updater.update(batch), args.device, max(1, args.rounds // 2))
    row["update_queries"] = args.update_queries
    if args.device == "cuda":
        row["peak_cuda_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    path = save_checkpoint(work / f"{size}.pt", policy)
    row["checkpoint_mib"] = path.stat().st_size / 2**20
    row["base_mib"] = sum(f.stat().st_size for f in (work / size).iterdir()) / 2**20
    return row


def write_markdown(rows: list[dict], path: Path, command: str) -> None:
    lines = [
        "# hf_vla at real size (SmolVLM architecture, LoRA on the language model)",
        "",
        f"`{command}` on {rows[0]['device']} ({platform.processor() or platform.machine()}"
        + (f", {torch.cuda.get_device_name()}" if rows[0]["device"] == "cuda" else "")
        + "). Median of rounds; random weights (cost does not depend on their values).",
        "",
        "| size | params | trainable | sample b1 ms | sample b8 ms | LOOP minibatch ms (queries) | peak GiB | ckpt MiB / base MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        peak = f"{r['peak_cuda_memory_gib']:.2f}" if "peak_cuda_memory_gib" in r else "–"
        lines.append(
            f"| {r['size']} | {r['parameters'] / 1e6:.0f} M | {r['trainable'] / 1e6:.2f} M | {r['sample_ms_b1']:.0f} | "
            f"{r['sample_ms_b8']:.0f} | {r['loop_minibatch_ms']:.0f} ({r['update_queries']}) | {peak} | "
            f"{r['checkpoint_mib']:.1f} / {r['base_mib']:.0f} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["256m", "500m"], help="smolvlm size presets (default 256m 500m)")
    parser.add_argument("--device", default=None, help="cuda (default when present) or cpu")
    parser.add_argument("--rounds", type=int, default=10, help="timed repetitions per measurement (median)")
    parser.add_argument("--update-queries", type=int, default=64, help="queries in the timed LOOP minibatch")
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("docs/bench"), help="where hf_vla.{json,md} go")
    args = parser.parse_args()
    args.device = args.device or ("cuda" if torch.cuda.is_available() else None)
    if args.device is None:
        print("bench/hf_vla.py: skipped, no CUDA device (pass --device cpu to time it on the CPU)")
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            rows.append(bench_size(size, args, Path(tmp)))
            print(json.dumps(rows[-1]))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hf_vla.json").write_text(json.dumps(rows, indent=2) + "\n")
    command = "python bench/hf_vla.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, list) else v}"
        for k, v in vars(args).items()
        if k in ("sizes", "device", "rounds", "update_queries", "lora_rank")
    )
    write_markdown(rows, args.out / "hf_vla.md", command)
    print(f"wrote {args.out / 'hf_vla.md'}")


if __name__ == "__main__":
    main()
