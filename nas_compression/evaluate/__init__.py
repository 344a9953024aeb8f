"""Measured objectives (deployed size, latency tables, proxy-task quality) and the candidate Evaluator interface."""
