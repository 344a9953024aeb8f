"""Raw sensors made from the simulator state: 3D LiDAR by ray casting, pinhole cameras, ego state and command."""
