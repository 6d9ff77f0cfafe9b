"""RIPT on a Franka with RealSense cameras: policy node + trainer node; an operator starts each trial
and publishes success on /reward. The Franka driver bridge (RobotState out, ActionCommand in) is
not part of ript yet: start it beside this graph (see docs/ros.md).

    ros2 launch ript_policy franka.launch.py checkpoint:=policy.ckpt contexts_file:=contexts.yaml
    ript up franka --set checkpoint=policy.ckpt --set contexts_file=contexts.yaml   (same graph)

Nodes, parameters and remappings come from ript_trainer.graph, the one definition that
`ript up` also starts (tests/ros/test_graph_definition.py keeps the two equal).
"""

from ript_trainer.launch_description import generate_for


def generate_launch_description():
    return generate_for("franka")
