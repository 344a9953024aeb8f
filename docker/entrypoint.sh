#!/bin/bash
# Sources ROS and makes the pip-installed package (prefix /usr/local) visible to `ros2 launch` / `ros2 run`.
set -e
# shellcheck disable=SC1090
source "/opt/ros/${ROS_DISTRO}/setup.bash"
export AMENT_PREFIX_PATH="/usr/local:${AMENT_PREFIX_PATH}"
exec "$@"
