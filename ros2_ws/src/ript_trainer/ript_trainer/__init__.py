"""RIPT-VLA training: LOOP (RLOO + PPO clip), dynamic rollout sampling, trainer node."""
