"""One LIBERO task as an env with LIBERO-keyed observations (the keys of ript.policies.libero_data).

Two modes: rendered (agentview + wrist RGB, as robosuite renders them, i.e. upside down; convert
with `ript.policies.libero_data.policy_observation`) and state-only (no renderer at all: proprio +
privileged object poses, ~5x faster on CPU). Resets are soft (`hard_reset=False`: 0.1 s instead of
4 s) and every reset settles the scene with no-op steps before the episode starts, as the standard
LIBERO evaluation does. Heavy imports (robosuite, LIBERO) happen on first use.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from functools import cache

import numpy as np

from ript.policies.libero_data import OBJECT_POSE_DIM  # pos (3) + quat xyzw (4) per object of interest

SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")
MAX_STEPS = {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520, "libero_90": 400}
"""Standard evaluation budget per suite (steps after settling), from the LIBERO/OpenVLA protocol."""
NOOP_ACTION = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float64)
"""Zero delta pose, gripper open: what the scene settles under."""
SIM_STATE = "sim_state"


@dataclass
class LiberoEnvConfig:
    suite: str = "libero_spatial"
    task_id: int = 0
    render: bool = True
    """False: state-only (no cameras, no renderer)."""
    image_size: int = 128
    """Height = width of both cameras."""
    fast_render: bool = True
    """Render without MSAA, reflections and shadows (~3x faster on a CPU renderer)."""
    max_objects: int = 3
    """object_state covers this many objects of interest (zero-padded): fixed size across tasks."""
    settle_steps: int = 10
    """No-op steps after each reset so objects come to rest (standard protocol: 10)."""
    max_steps: int | None = None
    """Episode budget after settling; None: the suite's standard (MAX_STEPS)."""

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise ValueError(f"suite must be one of {SUITES}, got {self.suite!r}")
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {self.image_size}")
        if self.settle_steps < 0 or (self.max_steps is not None and self.max_steps < 1):
            raise ValueError(f"settle_steps must be >= 0 and max_steps >= 1, got {self.settle_steps}, {self.max_steps}")
        if self.max_objects < 0:
            raise ValueError(f"max_objects must be >= 0, got {self.max_objects}")

    @property
    def episode_steps(self) -> int:
        return self.max_steps if self.max_steps is not None else MAX_STEPS[self.suite]

    @property
    def object_state_dim(self) -> int:
        return self.max_objects * OBJECT_POSE_DIM


def _quiet_imports() -> None:
    # robosuite warns about a missing private macro file on every import; the defaults are fine.
    import logging

    logging.getLogger("robosuite_logs").setLevel(logging.ERROR)
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    # One llvmpipe thread per process: workers already use every core, extra threads only contend.
    os.environ.setdefault("LP_NUM_THREADS", "1")


@cache
def benchmark_suite(suite: str):
    """The LIBERO benchmark object of a suite (task list, BDDL files, init states)."""
    _quiet_imports()
    import contextlib
    import io

    from libero.libero import benchmark

    with contextlib.redirect_stdout(io.StringIO()):  # it prints its task order
        return benchmark.get_benchmark_dict()[suite]()


def num_tasks(suite: str) -> int:
    return benchmark_suite(suite).get_num_tasks()


def task_instruction(suite: str, task_id: int) -> str:
    return benchmark_suite(suite).get_task(task_id).language


def task_name(suite: str, task_id: int) -> str:
    return benchmark_suite(suite).get_task(task_id).name


def benchmark_init_states(suite: str, task_id: int) -> np.ndarray:
    """The benchmark's evaluation init states [50, S] (flattened MuJoCo states)."""
    return np.asarray(benchmark_suite(suite).get_task_init_states(task_id), dtype=np.float64)


def make_env(base_config: LiberoEnvConfig, context) -> LiberoEnv:
    """The "libero" simulator's factory (ript.core.registry.SIMULATORS): base_config with the
    context's suite and task."""
    return LiberoEnv(replace(base_config, suite=context.suite, task_id=context.task_id))


class LiberoEnv:
    """A LIBERO task. `reset(init_state=...)` or `reset(seed=...)`, then `step(action)` until done."""

    def __init__(self, config: LiberoEnvConfig) -> None:
        _quiet_imports()
        from libero.libero.envs import OffScreenRenderEnv
        from libero.libero.envs.env_wrapper import ControlEnv

        self.config = config
        bench = benchmark_suite(config.suite)
        self.task_name = task_name(config.suite, config.task_id)
        self.instruction = task_instruction(config.suite, config.task_id)
        self.bddl_file = bench.get_task_bddl_file_path(config.task_id)
        kwargs = dict(bddl_file_name=self.bddl_file, hard_reset=False, ignore_done=True)
        if config.render:
            self._env = OffScreenRenderEnv(camera_heights=config.image_size, camera_widths=config.image_size, **kwargs)
            if config.fast_render:
                self._disable_expensive_rendering()
        else:
            self._env = ControlEnv(use_camera_obs=False, has_renderer=False, has_offscreen_renderer=False, **kwargs)
        self.robosuite_env = self._env.env
        self.objects_of_interest = list(self.robosuite_env.obj_of_interest)
        self.steps = 0
        self.raw_obs: dict[str, np.ndarray] = {}
        """The last robosuite observation (privileged: `<object>_pos`, ...), for scripted experts."""

    @property
    def env_args(self) -> dict:
        """What recreates this env; written into demo files."""
        return {
            "suite": self.config.suite,
            "task_id": self.config.task_id,
            "bddl_file": self.bddl_file,
            **{k: v for k, v in asdict(self.config).items() if k not in ("suite", "task_id")},
        }

    @property
    def sim(self):
        return self._env.sim

    def _disable_expensive_rendering(self) -> None:
        # MSAA samples are fixed when the MuJoCo GL context is created, so set them on the model
        # and rebuild the context; shadows and reflections are per-scene flags.
        import mujoco

        context = self.sim._render_context_offscreen
        model = self.sim.model._model
        model.vis.quality.offsamples = 0
        model.light_castshadow[:] = 0
        context.gl_ctx.make_current()
        context.con.free()
        context._set_mujoco_context_and_buffers()
        context.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        context.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0

    # ---- observations ------------------------------------------------------------------------
    def object_state(self) -> np.ndarray:
        """Poses [max_objects * 7] of the task's objects of interest (BDDL order), zero-padded."""
        out = np.zeros(self.config.object_state_dim, dtype=np.float64)
        env = self.robosuite_env
        for i, name in enumerate(self.objects_of_interest[: self.config.max_objects]):
            pose = out[i * OBJECT_POSE_DIM : (i + 1) * OBJECT_POSE_DIM]
            if name in env.obj_body_id:
                body = env.obj_body_id[name]
                pose[:3] = env.sim.data.body_xpos[body]
                pose[3:] = np.asarray(env.sim.data.body_xquat[body])[[1, 2, 3, 0]]  # wxyz -> xyzw
            else:  # a region (site) such as a basket's inside or a stove's burner
                site = env.sim.model.site_name2id(name)
                pose[:3] = env.sim.data.site_xpos[site]
                pose[3:] = (0.0, 0.0, 0.0, 1.0)
        return out

    def _observation(self, raw: dict) -> dict[str, np.ndarray]:
        from robosuite.utils.transform_utils import quat2axisangle

        self.raw_obs = raw
        ee_pos = np.asarray(raw["robot0_eef_pos"], dtype=np.float64)
        ee_ori = quat2axisangle(np.asarray(raw["robot0_eef_quat"], dtype=np.float64))
        obs = {
            "joint_states": np.asarray(raw["robot0_joint_pos"], dtype=np.float64),
            "gripper_states": np.asarray(raw["robot0_gripper_qpos"], dtype=np.float64),
            "ee_pos": ee_pos,
            "ee_ori": ee_ori,
            "ee_states": np.concatenate([ee_pos, ee_ori]),
            "object_state": self.object_state(),
            # Not a LIBERO obs key: the flattened MuJoCo state at this observation, which demo
            # recording stores as `states` (it must cross the worker pipe with the obs).
            SIM_STATE: self.get_state(),
        }
        if self.config.render:
            obs["agentview_rgb"] = raw["agentview_image"]
            obs["eye_in_hand_rgb"] = raw["robot0_eye_in_hand_image"]
        return obs

    # ---- episode -----------------------------------------------------------------------------
    def reset(self, init_state: np.ndarray | None = None, seed: int | None = None) -> dict[str, np.ndarray]:
        """Starts an episode from `init_state` (a flattened MuJoCo state, e.g. a benchmark init
        state) or, when None, from a fresh random placement drawn with `seed`; then settles."""
        if init_state is None:  # a fresh placement, drawn as sample_init_state draws it
            init_state = self.sample_init_state(seed if seed is not None else int(np.random.randint(2**31 - 1)))
        raw = self._set_state(init_state)
        for _ in range(self.config.settle_steps):
            raw, _, _, _ = self._env.step(NOOP_ACTION)
        self.steps = 0
        return self._observation(raw)

    def _set_state(self, init_state: np.ndarray) -> dict:
        """The scene at `init_state`, nothing of the previous episode left; the raw observation."""
        self._env.reset()
        init_state = np.asarray(init_state, dtype=np.float64)
        expected = self.sim.get_state().flatten().shape[0]
        if init_state.shape != (expected,):
            raise ValueError(f"init_state must have shape ({expected},), got {init_state.shape}")
        raw = self._env.set_init_state(init_state)
        self._forget_previous_episode()
        return raw

    def _forget_previous_episode(self) -> None:
        # A soft reset keeps the gripper's integrated command (current_action) from the previous
        # episode, so the same init state and actions gave different episodes. Clear it (and the
        # last torques) so an episode depends only on its init state and actions, bit for bit.
        for robot in self.robosuite_env.robots:
            robot.torques = np.zeros_like(robot.torques)
            if robot.has_gripper:
                robot.gripper.current_action = np.zeros_like(robot.gripper.current_action)
        # MuJoCo starts each step's constraint solver from the last step's accelerations: left over
        # from the previous episode, they make a reused env drift from a fresh one by float rounding.
        self.sim.data.qacc_warmstart[:] = 0

    def settle_shift(self, init_state: np.ndarray, steps: int = 10) -> float:
        """How far (m, horizontally) the farthest free object moves while the scene settles from
        `init_state` for `steps` no-op steps. The benchmark's init states drop their objects onto the
        table and move them a few cm at most (libero_spatial: <= 0.060 m over its 500); a placement that
        overlaps two objects flings one away (tens of cm, off the table), a scene no policy can solve."""
        self._set_state(init_state)
        model, qpos = self.sim.model, self.sim.data.qpos
        free = [model.jnt_qposadr[j] for j in range(model.njnt) if model.jnt_type[j] == 0]  # mjJNT_FREE
        start = np.array([qpos[a : a + 2] for a in free])
        for _ in range(steps):
            self._env.step(NOOP_ACTION)
        end = np.array([qpos[a : a + 2] for a in free])
        return float(np.linalg.norm(end - start, axis=1).max()) if free else 0.0

    def sample_init_state(self, seed: int) -> np.ndarray:
        """A fresh random placement drawn with `seed`, as a flattened MuJoCo state (unsettled, like
        the benchmark's init states). Deterministic in `seed`.

        Drawn with a *hard* reset (the model rebuilt, as LIBERO made its benchmark states): a soft
        reset places objects that stand on a fixture (a bowl on the wooden cabinet's top, on the
        stove) from stale fixture poses, ~0.9 m up and beside it, and they fall — task 9's target
        bowl never started on the cabinet, where every benchmark state has it."""
        np.random.seed(seed)
        self.robosuite_env.hard_reset = True
        try:
            self._env.reset()
        finally:
            self.robosuite_env.hard_reset = False
        return self.get_state()

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, dict]:
        """One control step (20 Hz). done = success or episode budget spent; reward = success."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (7,):
            raise ValueError(f"action must have shape (7,), got {action.shape}")
        raw, _, _, _ = self._env.step(action)
        self.steps += 1
        success = bool(self._env.check_success())
        truncated = self.steps >= self.config.episode_steps
        info = {"success": success, "truncated": truncated and not success, "steps": self.steps}
        return self._observation(raw), float(success), success or truncated, info

    def check_success(self) -> bool:
        return bool(self._env.check_success())

    def get_state(self) -> np.ndarray:
        """Flattened MuJoCo state (LIBERO's `states` entries and init states)."""
        return np.asarray(self.sim.get_state().flatten(), dtype=np.float64)

    def close(self) -> None:
        if getattr(self, "_env", None) is not None:
            self._env.close()
            self._env = None
