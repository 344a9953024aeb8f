"""Searches over the genome space: JASQ (evolutionary joint architecture + precision search) with Pareto fronts."""
