"""Closed-loop evaluation: frozen scene sets, drives scored with the PDM score, results, tables and plots."""
