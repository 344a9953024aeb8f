"""Training data: the dataset format (shards + manifest), the torch Dataset, targets, NAVSIM logs, synthetic data."""
