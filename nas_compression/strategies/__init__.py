"""Search strategies, each one loop written against the task protocol (``tasks.base``): JASQ and EAT-NAS over
genomes (``evolution``: what they share; ``inheritance``: weight inheritance; ``pareto``: objectives and fronts), and
DSO-NAS and EGS over cell supernets (``supernet``: their result). A new method is one module here."""
