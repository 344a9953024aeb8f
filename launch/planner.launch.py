"""Launch the DiffusionDrive planner lifecycle node.

    ros2 launch diffusiondrive_ros planner.launch.py backend:=onnxruntime lidar_topic:=/sensing/lidar/points

Every topic of the node can be remapped with ``<name>_topic:=...``; the node's command line (executable, node
name, parameter file, topic names) and environment (the Fast DDS profile config/fastdds.xml, unless
FASTDDS_DEFAULT_PROFILES_FILE is already set) come from diffusiondrive_ros.nodes.launch_spec, which the tests use
too.
"""

from launch import LaunchDescription  # noqa: I001 (the repo's launch/ folder makes ruff think "launch" is first-party)
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from diffusiondrive_ros.nodes.launch_spec import EXECUTABLE, NodeLaunch, default_params_file, node_environment
from diffusiondrive_ros.resources import PACKAGE
from diffusiondrive_ros.nodes.topics import TOPICS


def _planner_node(context):
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    overrides = {"autostart": arg("autostart").lower() in ("true", "1", "yes")}
    if arg("backend"):
        overrides["backend"] = arg("backend")
    if arg("model_path"):
        overrides["model_path"] = arg("model_path")
    description = NodeLaunch(
        params_files=[arg("params_file")],
        overrides=overrides,
        remaps={name: arg(f"{name}_topic") for name in TOPICS},
        namespace=arg("namespace"),
        log_level=arg("log_level"),
    )
    return [
        LifecycleNode(
            package=PACKAGE,
            executable=EXECUTABLE,
            name=description.node_name,
            namespace=description.namespace,
            parameters=[*map(str, description.params_files), dict(description.overrides)],
            remappings=description.remap_rules(),
            arguments=["--ros-args", "--log-level", description.log_level] if description.log_level else [],
            additional_env=node_environment(),  # the Fast DDS profile, unless the caller set one
            output="screen",
        )
    ]


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument("params_file", default_value=str(default_params_file()),
                              description="node parameters (YAML with a /**: ros__parameters: section)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="torch | onnxruntime | tensorrt; empty: the params file's"),
        DeclareLaunchArgument("model_path", default_value="", description="model file; empty: the params file's"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="configure and activate at start (false: wait for lifecycle requests)"),
        DeclareLaunchArgument("log_level", default_value="", description="e.g. debug; empty: the default"),
    ]
    arguments += [
        DeclareLaunchArgument(f"{name}_topic", default_value="", description=f"remap {topic} (empty: keep it)")
        for name, topic in TOPICS.items()
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_planner_node)])
