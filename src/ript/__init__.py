"""ript: post-training of Vision-Language-Action policies by interactive RL (RIPT-VLA's LOOP), in
LIBERO simulation and on a real robot over ROS 2.

The layers, each importing only the ones before it (tests/test_layers.py holds them to it):

    core      the Policy contract, LOOP, the sampler, trials and their store, the learner, config,
              safe I/O, metrics, reports. Imports neither rclpy nor LIBERO.
    policies  the VLA (encoders, regression and tokenized heads), SFT, checkpoints, ONNX, the
              success classifier.
    robot     the Franka safety layer and the RealSense driver, plain Python.
    panel     the operator panel's model and web app, ROS-free.
    sim       LIBERO envs, vectorized rollouts, contexts, the scripted expert, evaluation, the toy task.
    ros       the ROS 2 nodes (thin adapters over the layers below) and the one graph definition.
    cli       the `ript` command and its subcommands.
"""

__version__ = "0.2.0"
