"""Measurements: latency (ONNX Runtime timing, per-block latency tables, interleaved timing of whole graphs) and the
evaluators that run candidate evaluations (serial, a local process pool, Ray)."""
