"""RIPT on a Franka with RealSense cameras: policy node, trainer node, operator panel, two RealSense
camera nodes and the Franka bridge (safety layer, dry run by default); an operator starts each
trial and marks success. franka_ros2 (driver, Cartesian impedance controller, gripper) is not
started here: launch it for `robot_ip` first. `use_sim:=true` puts a LIBERO-backed Franka emulator
in place of the robot and the cameras (see docs/ros.md).

    ros2 launch ript_ros franka.launch.py checkpoint:=policy.ckpt contexts_file:=contexts.yaml \
        agentview_serial:=036522072967 wrist_serial:=123622270136 robot_ip:=172.16.0.2
    ript up franka --set checkpoint=policy.ckpt --set contexts_file=contexts.yaml ...   (same graph)

Nodes, parameters and remappings come from ript.ros.graph, the one definition that
`ript up` also starts (tests/ros/test_graph_definition.py keeps the two equal).
"""

from ript.ros.launch_description import generate_for


def generate_launch_description():
    return generate_for("franka")
