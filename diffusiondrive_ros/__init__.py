"""DiffusionDrive for ROS 2: model, runtime, simulation and ROS nodes."""

__version__ = "0.1.0"
