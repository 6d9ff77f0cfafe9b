"""RIPT on a Franka with RealSense cameras: policy node + trainer node; an operator starts each trial
and publishes success on /reward. The Franka driver bridge (RobotState out, ActionCommand in) is
not part of ript yet: start it beside this graph (see docs/ros.md).

    ros2 launch ript_policy franka.launch.py checkpoint:=policy.ckpt contexts_file:=contexts.yaml
    ript up franka --set checkpoint=policy.ckpt --set contexts_file=contexts.yaml   (same graph)

Nodes, parameters and remappings come from ript_trainer.graph, the one definition that
`ript up` also starts (tests/ros/test_graph_definition.py keeps the two equal).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from ript_trainer.graph import ARGUMENTS, Arg, graph_nodes

MODE = "franka"


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
