"""RIPT in simulation: policy node + trainer node + LIBERO bridge (the robot, cameras and success check).

    ros2 launch ript_policy sim.launch.py checkpoint:=runs/sft/policy.ckpt max_steps:=120
    ript up sim --set checkpoint=runs/sft/policy.ckpt --set max_steps=120     (same graph, pip install)

Nodes, parameters and remappings come from ript_trainer.graph, the one definition that
`ript up` also starts (tests/ros/test_graph_definition.py keeps the two equal).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from ript_trainer.graph import ARGUMENTS, Arg, graph_nodes

MODE = "sim"


def _value(value):
    if isinstance(value, Arg):
        return LaunchConfiguration(value.name)
    if isinstance(value, list):
        return [_value(part) for part in value]
    return value


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, (default, description) in ARGUMENTS[MODE].items()]
    nodes = [Node(package=spec.package, executable=spec.executable, name=spec.name, output="screen",
                  parameters=[{key: _value(value) for key, value in spec.parameters.items()}],
                  remappings=list(spec.remappings))
             for spec in graph_nodes(MODE)]
    return LaunchDescription(arguments + nodes)
