"""Supernets for the differentiable searches (DSO-NAS, EGS): candidate ops, cell networks, DDP, deployment."""
