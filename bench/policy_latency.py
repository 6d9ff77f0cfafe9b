"""Policy query latency: torch eager vs onnxruntime, batch 1 and 8, both heads, image and state input.

One "query" is `policy.sample(obs)`: encode the observation, produce an action chunk with its
log-probs (the tokenized head runs its L autoregressive steps). Torch and onnxruntime rounds are
interleaved so that load from other processes hits both alike; the median over rounds is reported.

    python bench/policy_latency.py --threads 1
    python bench/policy_latency.py --threads 2 --rounds 5 --out bench/results
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

from ript.policies.checkpoint import save_checkpoint
from ript.policies.config import VLAConfig
from ript.policies.onnx_export import export_onnx
from ript.policies.onnx_policy import OnnxPolicy, example_observation
from ript.policies.vla import build_policy


def per_query_ms(policy, obs, queries: int) -> float:
    start = time.perf_counter()
    for _ in range(queries):
        policy.sample(obs)
    return (time.perf_counter() - start) / queries * 1e3


def bench_variant(name: str, config: VLAConfig, batches: list[int], args, device: str, work: Path) -> list[dict]:
    torch.manual_seed(0)
    policy = build_policy(config).eval().to(device)
    save_checkpoint(work / f"{name}.pt", policy)
    onnx = OnnxPolicy(
        export_onnx(work / f"{name}.pt", work / f"{name}.onnx"),
        device="cuda" if device == "cuda" else "cpu",
        threads=None if device == "cuda" else args.threads,
    )
    rows = []
    for batch in batches:
        obs = example_observation(config, batch)
        obs_device = {k: v.to(device) for k, v in obs.items()}
        for _ in range(args.warmup):
            policy.sample(obs_device)
            onnx.sample(obs)
        timings = {"torch": [], "onnxruntime": []}
        for _ in range(args.rounds):  # interleaved rounds
            timings["torch"].append(per_query_ms(policy, obs_device, args.queries))
            timings["onnxruntime"].append(per_query_ms(onnx, obs, args.queries))
        torch_ms, ort_ms = (statistics.median(timings[k]) for k in ("torch", "onnxruntime"))
        row = {
            "variant": name,
            "device": device,
            "batch": batch,
            "torch_ms": round(torch_ms, 2),
            "onnxruntime_ms": round(ort_ms, 2),
            "speedup": round(torch_ms / ort_ms, 2),
            "torch_rounds_ms": [round(t, 2) for t in timings["torch"]],
            "onnxruntime_rounds_ms": [round(t, 2) for t in timings["onnxruntime"]],
            "onnx_providers": onnx.providers,
        }
        print(
            f"{name:24s} {device:4s} batch {batch}: torch {torch_ms:7.2f} ms  onnxruntime {ort_ms:7.2f} ms  "
            f"x{torch_ms / ort_ms:.2f}",
            flush=True,
        )
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime CPU threads (default 1)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds per backend")
    parser.add_argument("--queries", type=int, default=10, help="queries per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--variants", nargs="+", default=["image-regression", "image-tokenized", "state-regression", "state-tokenized"]
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    configs = {
        "image-regression": VLAConfig(input_mode="image", head="regression"),
        "image-tokenized": VLAConfig(input_mode="image", head="tokenized"),
        "state-regression": VLAConfig(input_mode="state", state_dim=44, head="regression"),
        "state-tokenized": VLAConfig(input_mode="state", state_dim=44, head="tokenized"),
    }
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for device in devices:
            for name in args.variants:
                rows += bench_variant(name, configs[name], args.batches, args, device, Path(tmp))
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    meta = {
        "torch": torch.__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "loadavg_after": load,
        "rounds": args.rounds,
        "queries_per_round": args.queries,
        "image_size": configs["image-regression"].image_size,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"policy_latency_t{args.threads}"
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    lines = [
        f"torch {meta['torch']}, onnxruntime {meta['onnxruntime']}, {args.threads} thread(s), "
        f"median of {args.rounds} interleaved rounds x {args.queries} queries; load average after: "
        f"{' '.join(load)}",
        "",
        "| variant | device | batch | torch eager (ms/query) | onnxruntime (ms/query) | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['variant']} | {r['device']} | {r['batch']} | {r['torch_ms']:.2f} | {r['onnxruntime_ms']:.2f} | "
        f"{r['speedup']:.2f}x |"
        for r in rows
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}")


if __name__ == "__main__":
    main()
