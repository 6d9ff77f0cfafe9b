"""LIBERO simulation: envs, vectorized rollouts, training contexts, the scripted expert, evaluation; the toy reach task."""
