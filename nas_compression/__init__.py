"""Neural architecture search and deployable quantization for the planner's encoders.

``space`` holds the genome (architecture + precision policy as data), ``quant`` the fake-quant / Q/DQ export path,
``evaluate`` the measured objectives (size, latency, quality) and ``search`` the JASQ evolutionary search.
"""
