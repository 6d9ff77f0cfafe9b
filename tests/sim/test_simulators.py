"""A new simulator is a module plus a registration: VectorEnv's workers build envs through
ript.core.registry.SIMULATORS (the worker process is handed the registered target, so a
registration made in the parent reaches a freshly spawned worker)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ript.core.registry import SIMULATORS
from ript.sim.contexts import Context
from ript.sim.env import LiberoEnvConfig
from ript.sim.vector_env import VectorEnv


def test_vector_env_runs_a_registered_simulator_in_its_workers(monkeypatch):
    monkeypatch.setattr(SIMULATORS, "_entries", {**SIMULATORS._entries, "counting": "counting_simulator:make_env"})
    contexts = [Context("toy", task_id=2, init_state=np.zeros(1)), Context("toy", task_id=3, init_state=np.zeros(1))]
    with VectorEnv(2, LiberoEnvConfig(render=False), simulator="counting", step_timeout_s=60) as vec:
        first = vec.reset(contexts)
        assert {obs["pid"] for obs in first} - {os.getpid()} == {obs["pid"] for obs in first}  # in the workers
        actions = np.zeros((2, 7))
        actions[:, 0] = 1.0
        successes = []
        for _ in range(3):
            step = vec.step(actions)
            assert not step.crashed.any()
            successes.append(step.successes.tolist())
    assert successes == [[False, False], [True, False], [True, True]]  # targets 2 and 3


def test_an_unknown_simulator_fails_before_any_worker_starts():
    with pytest.raises(KeyError, match="unknown simulator 'maniskill'; known: libero"):
        VectorEnv(1, simulator="maniskill")


GROUP_SIGNAL_CHILD = """
import json, signal, time
import numpy as np
from ript.core.registry import SIMULATORS
from ript.sim.contexts import Context
from ript.sim.env import LiberoEnvConfig
from ript.sim.vector_env import VectorEnv

stopped = []
signal.signal(signal.SIGTERM, lambda number, frame: stopped.append(number))  # as `ript train` asks to stop
SIMULATORS._entries = {**SIMULATORS._entries, "counting": "counting_simulator:make_env"}
contexts = [Context("toy", task_id=5, init_state=np.zeros(1)), Context("toy", task_id=5, init_state=np.zeros(1))]
with VectorEnv(2, LiberoEnvConfig(render=False), simulator="counting", step_timeout_s=60) as vec:
    pids = [obs["pid"] for obs in vec.reset(contexts)]
    print("ready", flush=True)
    while not stopped:
        time.sleep(0.01)
    step = vec.step(np.ones((2, 7)))
    after = {"pids": pids, "step_pids": [obs["pid"] for obs in step.obs], "crashed": step.crashed.tolist()}
    print(json.dumps({**after, "restarts": vec.restarts}), flush=True)
"""


@pytest.mark.timeout(120)
def test_a_signal_to_the_process_group_leaves_the_workers_to_the_parent(tmp_path):
    """SIGTERM to the whole process group (`timeout`, `kill -- -PGID`, a scheduler) reaches the
    trainer, which stops at its next safe point; its workers must still be there to finish the step."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", GROUP_SIGNAL_CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr[-3000:]
    after = json.loads(stdout.strip().splitlines()[-1])
    assert after["step_pids"] == after["pids"] and after["crashed"] == [False, False], after
    assert after["restarts"] == 0, after
