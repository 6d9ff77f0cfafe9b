"""The launch description of a ript graph, built from `ript.ros.graph` (the one definition
that `ript up` also starts). A graph whose nodes depend on a launch argument (`robots`) is built when
the launch runs (an OpaqueFunction reads the argument then). `launch`/`launch_ros` are imported when called: they exist only in a
full ROS 2 install, never in the pip environment."""

from __future__ import annotations

from ript.ros.graph import (
    ARGUMENTS,
    RESPAWN_DELAY_S,
    RESPAWN_MAX_RETRIES,
    ROS_PACKAGE,
    Arg,
    IfElse,
    Text,
    graph_nodes,
    robot_count,
)


def generate_for(mode: str):
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
    from launch.conditions import IfCondition, UnlessCondition
    from launch.substitutions import IfElseSubstitution, LaunchConfiguration
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue

    from launch import LaunchDescription

    def value_of(value):
        if isinstance(value, Arg):
            return LaunchConfiguration(value.name)
        if isinstance(value, list):
            return [value_of(part) for part in value]
        if isinstance(value, IfElse):  # substitutions take text: bools as launch writes them
            text = lambda v: (
                value_of(v) if isinstance(v, (Arg, list)) else str(v).lower() if isinstance(v, bool) else str(v)
            )
            return IfElseSubstitution(
                LaunchConfiguration(value.name), if_value=text(value.if_true), else_value=text(value.if_false)
            )
        if isinstance(value, Text):
            return ParameterValue(value_of(value.value), value_type=str)
        return value

    def condition_of(spec):
        if spec.run_if is None:
            return None
        name, when = spec.run_if
        return (IfCondition if when else UnlessCondition)(LaunchConfiguration(name))

    arguments = [
        DeclareLaunchArgument(name, default_value=default, description=description)
        for name, (default, description) in ARGUMENTS[mode].items()
    ]

    def exit_policy(spec):
        """ript up's policy: restart a node that can recover, stop the graph when one that cannot exits."""
        if spec.respawn:
            return {"respawn": True, "respawn_delay": RESPAWN_DELAY_S, "respawn_max_retries": RESPAWN_MAX_RETRIES}
        return {"on_exit": Shutdown(reason=f"{spec.name} exited; it is not restarted")}

    def nodes(robots: int) -> list:
        return [
            Node(
                package=ROS_PACKAGE,
                executable=spec.executable,
                name=spec.name,
                output="screen",
                parameters=[{key: value_of(value) for key, value in spec.parameters.items()}],
                remappings=list(spec.remappings),
                condition=condition_of(spec),
                **({"namespace": spec.namespace} if spec.namespace else {}),
                **exit_policy(spec),
            )
            for spec in graph_nodes(mode, robots)
        ]

    if "robots" not in ARGUMENTS[mode]:
        return LaunchDescription(arguments + nodes(1))
    robots = lambda context: nodes(robot_count({"robots": LaunchConfiguration("robots").perform(context)}))
    return LaunchDescription([*arguments, OpaqueFunction(function=robots)])
