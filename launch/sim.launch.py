"""RIPT in simulation: policy node + trainer node + LIBERO bridge (the robot, cameras and success check).

    ros2 launch ript_ros sim.launch.py checkpoint:=runs/sft/policy.ckpt max_steps:=120
    ript up sim --set checkpoint=runs/sft/policy.ckpt --set max_steps=120     (same graph, pip install)

Nodes, parameters and remappings come from ript.ros.graph, the one definition that
`ript up` also starts (tests/ros/test_graph_definition.py keeps the two equal).
"""

from ript.ros.launch_description import generate_for


def generate_launch_description():
    return generate_for("sim")
