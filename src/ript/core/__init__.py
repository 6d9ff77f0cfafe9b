"""The ROS-free core: the Policy contract, LOOP, sampling, trials, the learner, config, safe I/O, metrics."""
