"""Cell search spaces as supernet modules, for the differentiable searches (DSO-NAS, EGS).

``ops`` holds the candidate operations, ``dso`` the completely connected blocks with a lambda per edge, ``egs`` the
ensemble-Gumbel cells, ``planner`` both as the planner's camera/LiDAR encoders, and ``nearest_genome`` maps a derived
cell architecture onto the stage genome that the genome tasks evaluate and deploy.
"""
