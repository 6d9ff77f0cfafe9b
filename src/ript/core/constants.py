"""Observation and action keys shared by models, envs, ROS nodes and the trial store.

LeRobot-style names, so a batch from a LIBERO env, a ROS topic or an HDF5 demo looks the same.
"""

OBS_STATE = "observation.state"
"""Proprioception (and, in state mode, object poses), float [B, D]."""
OBS_IMAGE_PREFIX = "observation.images."
"""Every camera's key starts with this; the rest is the camera's name."""
OBS_IMAGE_AGENTVIEW = "observation.images.agentview"
"""Third-person RGB, uint8 [B, H, W, 3], upright."""
OBS_IMAGE_WRIST = "observation.images.wrist"
"""Wrist RGB, uint8 [B, H, W, 3], upright."""
OBS_LANGUAGE = "observation.language"
"""Instruction embedding, float [B, E] (all-MiniLM-L6-v2: E = 384)."""
ACTION = "action"
"""Delta end-effector pose + gripper, float [B, H, 7] (LIBERO convention: gripper -1 open, +1 close)."""

LIBERO_ACTION_DIM = 7
