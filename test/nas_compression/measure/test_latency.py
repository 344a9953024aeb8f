"""Per-layer latency table (ONNX Runtime CPU): prediction vs end-to-end measurement on sample genomes."""

from __future__ import annotations

import json

import numpy as np

from nas_compression.measure.latency import LatencyTable
from nas_compression.space.sampling import SearchSpace, random_genome
from nas_compression.tasks.classify import classifier_units, classify_template, validate_table


def test_table_predicts_measured_latency(tmp_path):
    rng = np.random.default_rng(0)
    space = SearchSpace(depths=(1, 2))
    genomes = [random_genome(rng, space, classify_template()) for _ in range(3)]
    table = LatencyTable.load(tmp_path / "table.json")
    rows = validate_table(table, genomes, 28)
    table.save()
    errors = [abs(r["relative_error"]) for r in rows]
    print("latency table validation:", json.dumps(rows, indent=1))
    # Sub-millisecond networks on a shared 2-core machine: the sum of per-layer medians tracks the whole network.
    assert float(np.mean(errors)) < 0.6, rows
    assert all(r["predicted_ms"] > 0 and r["measured_ms"] > 0 for r in rows)
    # Persisted and reused: the second lookup measures nothing new.
    again = LatencyTable.load(tmp_path / "table.json")
    n = len(again.entries)
    again.predict(classifier_units(genomes[0], 28), measure_missing=False)
    assert len(again.entries) == n
