"""The launch description of a ript graph, built from `ript_trainer.graph` (the one definition
that `ript up` also starts). `launch`/`launch_ros` are imported when called: they exist only in a
full ROS 2 install, never in the pip environment."""

from __future__ import annotations

from ript_trainer.graph import ARGUMENTS, Arg, graph_nodes


def generate_for(mode: str):
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    def value_of(value):
        if isinstance(value, Arg):
            return LaunchConfiguration(value.name)
        if isinstance(value, list):
            return [value_of(part) for part in value]
        return value

    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, (default, description) in ARGUMENTS[mode].items()]
    nodes = [Node(package=spec.package, executable=spec.executable, name=spec.name, output="screen",
                  parameters=[{key: value_of(value) for key, value in spec.parameters.items()}],
                  remappings=list(spec.remappings))
             for spec in graph_nodes(mode)]
    return LaunchDescription(arguments + nodes)
