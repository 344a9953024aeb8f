"""Neural architecture search and deployable quantization for the planner's encoders.

Subpackages, each importing only from those before it: ``space`` (genomes and cell supernets), ``quant`` (fake quant,
Q/DQ ONNX export), ``measure`` (latency, evaluators), ``tasks`` (the task protocol: classification, the planner),
``strategies`` (JASQ, EAT-NAS, DSO-NAS, EGS), ``experiments`` (method comparison, retraining search winners);
then ``deploy`` (a genome into a planner model directory) and ``cli`` (``nas-compress``).
"""
