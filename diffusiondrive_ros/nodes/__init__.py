"""The rclpy planner node and what surrounds it: message conversions, parameters, topics, launch spec, bag tools."""
