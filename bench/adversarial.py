"""The adversarial suite, long form: hostile files named by messages, every file kind the trainer
writes corrupted in every way, SIGKILL loops of a trainer mid-iteration, reward floods, a torn
panel journal, and a timed fuzz of the panel's HTTP API. Prints one table (case, inputs tried,
expected, observed, lost acknowledged trials) and writes it as JSON and markdown.

The fast versions of these cases are tests (tests/trainer/test_untrusted_files.py,
tests/trainer/test_interactive.py, tests/ros/test_forged_messages.py, tests/panel/); this runs them
wider and longer, on the same core code the ROS nodes call (no DDS: what a message can carry is
exactly what these functions receive).

    python bench/adversarial.py --out docs/bench                       # ~2 min on 2 cores
    python bench/adversarial.py --kills 50 --fuzz-seconds 120 --out runs/adversarial
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import random
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import torch

from ript.core.constants import OBS_STATE
from ript.core.interactive import ContextInfo, InteractiveTrainer
from ript.core.learner import TrainConfig, UnresumableRunError
from ript.core.loop import LoopConfig
from ript.core.safe_io import CorruptFileError, file_digest, save_verified
from ript.core.sampler import SamplerConfig
from ript.core.trial_store import TrialStore, load_announced_trajectory
from ript.core.trials import Trajectory
from ript.policies.config import VLAConfig
from ript.policies.vla import build_policy

STATE_DIM = 5
CONTEXTS = [ContextInfo(f"ctx{i}", f"task {i}") for i in range(3)]
ROWS: list[dict] = []


def row(case: str, tried: int, expected: str, observed: str, lost: int, ok: bool) -> None:
    ROWS.append({"case": case, "inputs": tried, "expected": expected, "observed": observed, "lost": lost, "ok": ok})
    print(f"{'ok ' if ok else 'BAD'} {case:38s} {tried:6d}  {observed}  (lost {lost})", flush=True)


# ---- a tiny interactive trainer, as the ROS trainer node drives it ------------------------------
def tiny_policy():
    torch.manual_seed(0)
    return build_policy(
        VLAConfig(
            input_mode="state",
            state_dim=STATE_DIM,
            use_language=False,
            hidden_dim=16,
            num_layers=1,
            num_heads=2,
            chunk_size=4,
            execute_steps=4,
        )
    ).eval()


def make_trainer(run_dir: Path, iterations: int = 3) -> InteractiveTrainer:
    policy = tiny_policy()
    config = TrainConfig(
        iterations=iterations,
        learning_rate=1e-2,
        eval_every=0,
        sampler=SamplerConfig(group_size=2, batch_size=4, dynamic=True),
        loop=LoopConfig(ppo_epochs=1, minibatch_size=12, loss_normalization="token", target_kl=None),
    )
    initial = run_dir / "initial.ckpt"
    if not initial.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        save_verified(policy.state_dict(), initial)
    return InteractiveTrainer(
        policy, CONTEXTS, config, run_dir, lambda path: save_verified(policy.state_dict(), path), initial
    )


def trajectory_for(policy, key: str) -> Trajectory:
    """A deterministic trajectory per (iteration, group, k): the same after any restart."""
    gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    obs = {OBS_STATE: torch.randn(3, STATE_DIM, generator=gen)}
    with torch.no_grad():
        sample = policy.sample(obs, generator=gen)
    return Trajectory(
        obs=obs,
        scored=sample.scored,
        log_probs=sample.log_probs,
        mask=torch.ones_like(sample.log_probs, dtype=torch.bool),
        num_steps=12,
    )


def feed(
    trainer: InteractiveTrainer, acknowledge=lambda trial_id: None, max_trials: int | None = None, trial_s: float = 0.0
) -> int:
    """Run trials until training is done: k = 0 succeeds, k = 1 fails (every group informative).
    `trial_s`: how long each trial takes (a robot's trial takes seconds, not microseconds)."""
    done = 0
    while not trainer.done and (max_trials is None or done < max_trials):
        time.sleep(trial_s)
        ticket = trainer.next_trial()
        if ticket is None:
            break
        key = f"{ticket.iteration}/{ticket.context_id}/{ticket.trial_index}"
        trainer.on_reward(ticket.trial_id, 1.0 if ticket.trial_index == 0 else 0.0, "simulator")
        verdict = trainer.on_trajectory(ticket.trial_id, trajectory_for(trainer.policy, key))
        if verdict.trial_stored:
            acknowledge(ticket.trial_id)  # what the node publishes on /ript/status, only after the store
        done += 1
    return done


def weights_of(trainer: InteractiveTrainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.policy.state_dict().items()}


# ---- 1. files named by messages ---------------------------------------------------------------
class WritesMarker:
    """A pickle payload whose loading would create a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def announced(path: Path) -> str:
    """The digest a forger would announce: the file's own, or its bytes' hash when it has no header."""
    import hashlib

    try:
        return file_digest(path)
    except CorruptFileError:
        return hashlib.sha256(path.read_bytes()).hexdigest()


def hostile_files(folder: Path, outside: Path, marker: Path, trial_id: str, good: dict) -> list[tuple[str, Path, str]]:
    """(kind, path, announced digest) of every hostile file a TrialRecord could name."""
    import io

    cases = []

    def verified(kind: str, payload, name: str | None = None, where: Path = folder) -> None:
        path = where / (name or f"{kind}.traj")
        save_verified(payload, path) if not callable(payload) else payload(path)
        cases.append((kind, path, announced(path)))

    def raw(kind: str, data: bytes) -> None:
        path = folder / f"{kind}.traj"
        path.write_bytes(data)
        cases.append((kind, path, announced(path)))

    bomb = {"trial_id": trial_id, "obs": WritesMarker(marker)}
    buffer = io.BytesIO()
    torch.save(bomb, buffer)
    import hashlib

    from ript.core.safe_io import MAGIC

    blob = buffer.getvalue()
    raw("pickle_code_in_verified_file", MAGIC + hashlib.sha256(blob).hexdigest().encode() + b"\n" + blob)
    raw("plain_torch_pickle", blob)
    verified("list_payload", [torch.zeros(2)])
    verified("string_payload", "hello")
    verified("wrong_trial_id", {**good, "trial_id": "someone-else"})
    verified("missing_fields", {"trial_id": trial_id, "obs": good["obs"]})
    verified("rows_mismatch", {**good, "scored": torch.zeros(7, 4, 7)})
    verified("nan_log_probs", {**good, "log_probs": torch.full_like(good["log_probs"], float("nan"))})
    verified("obs_not_tensors", {**good, "obs": {"observation.state": [1, 2, 3]}})
    verified("num_steps_negative", {**good, "num_steps": -5})
    verified("outside_folder", {**good}, where=outside)
    raw("random_bytes", os.urandom(4096))
    raw("empty", b"")
    good_path = folder / "truncated.traj"
    save_verified(good, good_path)
    good_path.write_bytes(good_path.read_bytes()[:-100])
    cases.append(("truncated", good_path, announced(good_path)))
    flipped = folder / "bit_flip.traj"
    save_verified(good, flipped)
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x40
    flipped.write_bytes(bytes(data))
    cases.append(("bit_flip", flipped, announced(flipped)))
    right = folder / "digest_mismatch.traj"
    save_verified(good, right)
    cases.append(("digest_mismatch", right, "0" * 64))
    link = folder / "symlink_out.traj"
    target = outside / "target.traj"
    save_verified(good, target)
    link.symlink_to(target)
    cases.append(("symlink_outside", link, file_digest(target)))
    cases.append(("traversal", folder / ".." / "outside" / "target.traj", file_digest(target)))
    cases.append(("missing_file", folder / "nope.traj", "0" * 64))
    cases.append(("a_folder", folder, "0" * 64))
    huge = folder / "huge.traj"
    with huge.open("wb") as f:
        f.truncate(2 << 20)
    cases.append(("over_size_limit", huge, announced(huge)))
    return cases


def case_forged_files(work: Path) -> None:
    folder, outside, marker = work / "incoming", work / "outside", work / "code-ran"
    folder.mkdir(parents=True)
    outside.mkdir(parents=True)
    trial_id = "it0001-g000-c000-k0-abcdef"
    policy = tiny_policy()
    good = {"trial_id": trial_id, **{k: v for k, v in _plain(trajectory_for(policy, "x")).items()}}
    cases = hostile_files(folder, outside, marker, trial_id, good)
    refused, crashes, accepted = 0, [], []
    for kind, path, digest in cases:
        try:
            load_announced_trajectory(path, digest, trial_id, folder, max_bytes=1 << 20)
            accepted.append(kind)
        except (OSError, CorruptFileError, ValueError):
            refused += 1
        except Exception as exc:  # anything else would take the trainer node down
            crashes.append(f"{kind}: {type(exc).__name__}")
    ran = marker.exists()
    ok = not ran and not crashes and not accepted
    row(
        "forged trajectory files",
        len(cases),
        "all refused with a reason, no code runs, no crash",
        f"{refused} refused, {len(accepted)} accepted{f' {accepted}' if accepted else ''}, {len(crashes)} crashes"
        f"{f' {crashes}' if crashes else ''}, code ran: {ran}",
        0,
        ok,
    )


def _plain(trajectory: Trajectory) -> dict:
    from ript.core.trial_store import trajectory_to_dict

    return trajectory_to_dict(trajectory)


# ---- 2. every file kind the trainer writes, corrupted ----------------------------------------
CORRUPTIONS = {
    "truncate": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "bit_flip": lambda p: p.write_bytes(_flip(p.read_bytes())),
    "zero_length": lambda p: p.write_bytes(b""),
    "garbage": lambda p: p.write_bytes(os.urandom(512)),
    "delete": lambda p: p.unlink(),
}


def _flip(data: bytes) -> bytes:
    changed = bytearray(data)
    changed[len(changed) * 2 // 3] ^= 0x01
    return bytes(changed)


def build_run(run_dir: Path) -> tuple[set[str], dict[str, torch.Tensor]]:
    """Two iterations done, then 3 acknowledged trials of the third; returns the acknowledged ids
    of the open iteration and the weights an uninterrupted run reaches."""
    trainer = make_trainer(run_dir, iterations=3)
    feed(trainer, max_trials=8)  # iterations 1 and 2 (B = 4 each)
    open_iteration: set[str] = set()
    feed(trainer, acknowledge=open_iteration.add, max_trials=3)
    trainer.close()
    return open_iteration


def file_kinds(run_dir: Path) -> dict[str, list[Path]]:
    trials = sorted((run_dir / "trials" / "iter_000003").glob("*.trial"))
    store = TrialStore(run_dir / "trials")
    return {
        "latest checkpoint": [run_dir / "checkpoints" / "iter_000002.ckpt"],
        "every checkpoint": sorted((run_dir / "checkpoints").glob("iter_*.ckpt")),
        "open-iteration trial": [trials[1]],
        "open-iteration trial + its replica": [trials[1], store.replica(trials[1])],
        "trial replica": [store.replica(trials[0])],
        "latest weights file": [run_dir / "weights" / "policy_v000002.ckpt"],
        "metrics.jsonl": [run_dir / "metrics.jsonl"],
    }


def case_corrupt_run_files(work: Path) -> None:
    import shutil

    pristine = work / "pristine"
    acknowledged = build_run(pristine)
    reference = make_trainer(work / "reference", iterations=3)
    feed(reference)
    expected_weights = weights_of(reference)
    reference.close()
    for kind in file_kinds(pristine):
        tried, lost_total, observations, ok = 0, 0, [], True
        for name, corrupt in CORRUPTIONS.items():
            run_dir = work / f"{kind.replace(' ', '_')}_{name}"
            shutil.copytree(pristine, run_dir)
            for path in file_kinds(run_dir)[kind]:
                if path.exists():
                    corrupt(path)
            tried += 1
            trainer = make_trainer(run_dir, iterations=3)
            try:
                trainer.resume()
                resumed_at = trainer.iteration
                replayed = set(trainer.store.trial_ids()) & acknowledged
                lost = len(acknowledged - replayed)
                weights_path = trainer.verified_weights_path()  # what the node announces first
                feed(trainer)
                same = all(
                    torch.allclose(a, b, atol=1e-6)
                    for a, b in zip(weights_of(trainer).values(), expected_weights.values())
                )
                observed = f"resumed at iteration {resumed_at}, {'same' if same else 'different'} final weights"
                if kind == "open-iteration trial + its replica":
                    # both copies gone: the replay stops there; that trial and the later one of its
                    # iteration (kept aside in unreplayed/) are not trained on, the run goes on
                    observed += f", {lost} not replayed"
                    ok &= lost <= 2
                else:
                    ok &= lost == 0 and same and weights_path.exists()
                lost_total += lost
            except UnresumableRunError as exc:
                observed = "refused: " + str(exc).split(": ", 1)[-1].split(";")[0][:70]
                ok &= kind == "every checkpoint"
            except Exception as exc:
                observed = f"CRASH {type(exc).__name__}: {exc}"[:120]
                ok = False
            finally:
                trainer.close()
            observations.append(f"{name}: {observed}")
        expected = (
            "refuses to resume with a reason (resume=fresh to start over)"
            if kind == "every checkpoint"
            else "replay stops at the destroyed trial (it and the 1 after it not trained on), no crash"
            if "+" in kind
            else "resumes, no acknowledged trial lost, same final weights"
        )
        row(f"corrupt {kind}", tried, expected, "; ".join(sorted(set(observations)))[:400], lost_total, ok)


# ---- 3. SIGKILL loop --------------------------------------------------------------------------
KILL_LOOP_ITERATIONS = 8


def worker(run_dir: Path) -> None:
    """A trainer process: resume, feed trials, print ACK <id> after each stored trial."""
    trainer = make_trainer(run_dir, iterations=KILL_LOOP_ITERATIONS)
    trainer.resume()
    print("READY", flush=True)
    feed(trainer, acknowledge=lambda trial_id: print(f"ACK {trial_id}", flush=True), trial_s=0.05)
    trainer.close()
    print("DONE", flush=True)


def case_kill_loop(work: Path, kills: int, seed: int) -> None:
    """SIGKILL the trainer process after a random number of acknowledged trials plus a random few
    milliseconds (so kills land inside stores, updates and checkpoint writes), restart, repeat."""
    run_dir = work / "killed"
    rng = random.Random(seed)
    acknowledged: set[str] = set()
    killed, finished = 0, False
    while not finished:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(run_dir)], stdout=subprocess.PIPE, text=True, bufsize=1
        )
        kill_after = rng.randint(1, 4) if killed < kills else None
        seen_here = 0
        for line in proc.stdout:
            if line.startswith("ACK "):
                acknowledged.add(line.split()[1])
                seen_here += 1
                if kill_after is not None and seen_here >= kill_after:
                    time.sleep(rng.uniform(0.0, 0.05))
                    proc.send_signal(signal.SIGKILL)
                    killed += 1
                    break
            finished |= line.startswith("DONE")
        for line in proc.stdout:  # whatever it printed before it died counts as acknowledged
            if line.startswith("ACK "):
                acknowledged.add(line.split()[1])
            finished |= line.startswith("DONE")
        proc.wait()
    stored = set(TrialStore(run_dir / "trials").trial_ids())
    lost = len(acknowledged - stored)
    reference = make_trainer(work / "unkilled", iterations=KILL_LOOP_ITERATIONS)
    feed(reference)
    final = make_trainer(run_dir, iterations=KILL_LOOP_ITERATIONS)
    final.resume()
    same = final.iteration == reference.iteration and all(
        torch.allclose(a, b, atol=1e-6) for a, b in zip(weights_of(final).values(), weights_of(reference).values())
    )
    final.close()
    reference.close()
    row(
        "SIGKILL of the trainer mid-iteration",
        killed,
        "0 acknowledged trials lost, same final weights",
        f"{killed} kills, {len(acknowledged)} acknowledged, all stored: {lost == 0}, "
        f"final weights equal an unkilled run: {same}",
        lost,
        lost == 0 and same,
    )


# ---- 4. reward floods --------------------------------------------------------------------------
def case_reward_flood(work: Path, count: int, seed: int) -> None:
    from ript.core.trial_identity import TrialIdentity
    from ript.panel.state import PanelConfig, PanelState

    rng = random.Random(seed)
    trainer = make_trainer(work / "flood", iterations=1)
    panel = PanelState(PanelConfig(token="t", marks_file=str(work / "flood" / "marks.jsonl")))
    ticket = trainer.next_trial()
    panel.on_trial_start(
        TrialIdentity(
            ticket.trial_id,
            ticket.context_id,
            ticket.iteration,
            ticket.trial_index,
            ticket.group_size,
            ticket.instruction,
        )
    )
    stored_before = len(trainer.store.trial_ids())
    accepted = 0
    for _ in range(count):
        kind = rng.choice(["unknown", "stale", "long", "empty", "unicode"])
        trial_id = {
            "unknown": f"it0001-g{rng.randrange(999):03d}-forged",
            "stale": "it0000-g000-c000-k0-000000",
            "long": "x" * rng.randrange(100, 5000),
            "empty": "",
            "unicode": "it0001-\u202e\x00\ufffd",
        }[kind]
        accepted += trainer.on_reward(trial_id, float(rng.random() < 0.5), "operator").accepted
        panel.on_reward(trial_id, rng.random() < 0.5, "simulator")
    in_history = sum(len(c["outcomes"]) for c in panel.history()["contexts"])
    stored = len(trainer.store.trial_ids()) - stored_before
    # the real trial still completes after the flood
    trainer.on_reward(ticket.trial_id, 1.0, "simulator")
    completed = trainer.on_trajectory(ticket.trial_id, trajectory_for(trainer.policy, "flood")).trial_stored
    trainer.close()
    row(
        "reward flood (unknown/stale/odd ids)",
        count,
        "0 accepted, 0 in the panel's history, the real trial completes",
        f"{accepted} accepted by the trainer, {in_history} in the panel history, {stored} stored, "
        f"real trial stored after: {completed}",
        0,
        accepted == 0 and in_history == 0 and stored == 0 and completed,
    )


# ---- 5. the panel journal torn at every byte ----------------------------------------------------
def case_torn_journal(work: Path) -> None:
    from ript.core.trial_identity import TrialIdentity
    from ript.panel.state import PanelConfig, PanelState

    journal = work / "journal" / "marks.jsonl"
    state = PanelState(PanelConfig(token="t", undo_window_s=0, marks_file=str(journal)))
    for n in range(3):
        state.on_trial_start(TrialIdentity(f"it0001-g000-c000-k{n}-aaaaaa", "ctx0", 1, n, 3, "task"))
        mark = state.mark(f"it0001-g000-c000-k{n}-aaaaaa", n % 2 == 0, hold=False)
        state.published(mark)
    data = journal.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    tried, crashes, lost_after = 0, 0, 0
    for cut in range(last_start, len(data)):
        torn = work / "journal" / f"torn_{cut}.jsonl"
        torn.write_bytes(data[:cut])
        tried += 1
        try:
            again = PanelState(PanelConfig(token="t", undo_window_s=0, marks_file=str(torn)))
            again.on_trial_start(TrialIdentity("it0001-g001-c001-k0-bbbbbb", "ctx1", 1, 0, 2, "task"))
            again.published(again.mark("it0001-g001-c001-k0-bbbbbb", True, hold=False))
            reread = PanelState(PanelConfig(token="t", undo_window_s=0, marks_file=str(torn)))
            if not any(m.trial_id == "it0001-g001-c001-k0-bbbbbb" for m in reread.marks):
                lost_after += 1
        except Exception:
            crashes += 1
    for shape in ('{"event": "mark"}', "[1, 2]", '"text"', '{"event": 5, "mark": null}', "\x00\x01"):
        odd = work / "journal" / f"odd_{tried}.jsonl"
        odd.write_bytes(data + shape.encode() + b"\n")
        tried += 1
        try:
            PanelState(PanelConfig(token="t", marks_file=str(odd)))
        except Exception:
            crashes += 1
    row(
        "panel journal torn / odd lines",
        tried,
        "restarts every time, the next mark is kept",
        f"{crashes} crashes, {lost_after} next marks lost",
        lost_after,
        crashes == 0 and lost_after == 0,
    )


# ---- 6. the panel's HTTP API fuzzed for a fixed time --------------------------------------------
def case_panel_fuzz(work: Path, seconds: float) -> None:
    import numpy as np
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    from ript.core.trial_identity import TrialIdentity
    from ript.panel.app import create_app
    from ript.panel.state import PanelConfig, PanelState

    class Actions:  # the trainer and the robot bridge, answering at once
        def publish(self, mark):
            state.published(mark)

        def start_trial(self):
            return True, "it0009-g000-c000-k0-cccccc", "started"

        def abort_trial(self, trial_id, reason):
            return True, "aborted"

        def robot_command(self, command):
            return True, command

    # schemathesis' ASGI client sends Host: testserver
    state = PanelState(
        PanelConfig(
            token="fuzz-token",
            undo_window_s=0.2,
            marks_file=str(work / "fuzz" / "m.jsonl"),
            allowed_hosts=("testserver",),
        )
    )
    state.on_trial_start(TrialIdentity("it0001-g000-c000-k0-aaaaaa", "ctx0", 1, 0, 2, "task"))
    state.set_frame("agentview", np.zeros((8, 8, 3), np.uint8))
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(state, Actions()))
    operations = [result.ok() for result in schema.get_all_operations()]
    strategy = st.one_of(
        [
            op.as_strategy(generation_mode=mode)
            for op in operations
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
    )
    seen: list[tuple[str, int, bool]] = []
    deadline = time.monotonic() + seconds

    @given(case=strategy, authorized=st.booleans())
    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case, authorized):
        headers = {"Authorization": "Bearer fuzz-token"} if authorized else None
        response = case.call(headers=headers)
        # the path the server saw: a schema-breaking path parameter ('../../health') can turn an
        # /api/ template into a request for an open page, which is not an unauthenticated read
        served = posixpath.normpath(urlsplit(response.request.url).path) if response.request.url else case.path
        seen.append((served, response.status_code, authorized))

    while time.monotonic() < deadline:
        fuzz()
    protected = [s for s in seen if s[0].startswith("/api/")]
    leaks = sorted({f"{path} {code}" for path, code, authorized in protected if not authorized and code < 300})
    unauthenticated_2xx = sum(1 for path, code, authorized in protected if not authorized and code < 300)
    server_errors = sum(1 for _, code, _ in seen if code >= 500)
    row(
        f"panel API fuzz ({seconds:g} s)",
        len(seen),
        "0 × 5xx, 0 unauthenticated 2xx on /api",
        f"{server_errors} × 5xx, {unauthenticated_2xx} unauthenticated 2xx{f' {leaks}' if leaks else ''}, "
        f"codes {sorted({c for _, c, _ in seen})}",
        0,
        server_errors == 0 and unauthenticated_2xx == 0,
    )


def write(out: Path, args: argparse.Namespace, seconds: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "adversarial.json").write_text(
        json.dumps(
            {
                "rows": ROWS,
                "seed": args.seed,
                "kills": args.kills,
                "flood": args.flood,
                "fuzz_seconds": args.fuzz_seconds,
                "wall_s": round(seconds, 1),
            },
            indent=1,
        )
    )
    lines = [
        "| case | inputs | expected | observed | lost acknowledged trials | holds |",
        "|---|---:|---|---|---:|---|",
    ]
    lines += [
        f"| {r['case']} | {r['inputs']} | {r['expected']} | {r['observed'].replace('|', '/')} | {r['lost']} | "
        f"{'yes' if r['ok'] else '**no**'} |"
        for r in ROWS
    ]
    (out / "adversarial.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'adversarial.md'} and adversarial.json ({seconds:.0f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/adversarial"), help="folder for the JSON and markdown")
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs of the trainer process")
    parser.add_argument("--flood", type=int, default=10000, help="forged rewards in the flood")
    parser.add_argument("--fuzz-seconds", type=float, default=60.0, help="time for the panel API fuzz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return 0
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ript-adversarial-") as tmp:
        work = Path(tmp)
        case_forged_files(work / "forged")
        case_corrupt_run_files(work / "corrupt")
        case_kill_loop(work / "kill", args.kills, args.seed)
        case_reward_flood(work, args.flood, args.seed)
        case_torn_journal(work)
        case_panel_fuzz(work, args.fuzz_seconds)
    write(args.out, args, time.monotonic() - start)
    return 0 if all(r["ok"] for r in ROWS) else 1


if __name__ == "__main__":
    sys.exit(main())
