"""LIBERO simulation for ript: envs, vectorized rollouts, contexts, scripted demos, evaluation."""
