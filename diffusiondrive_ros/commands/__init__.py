"""Sub-commands of ``diffusiondrive`` (see diffusiondrive_ros.cli)."""
