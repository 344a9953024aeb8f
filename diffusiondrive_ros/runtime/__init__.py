"""Deployment runtime: preprocessing, backends behind one Planner interface, postprocessing, export."""
