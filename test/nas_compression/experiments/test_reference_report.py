"""A planner search's report: which candidates are faster than a hand-made reference at no worse quality."""

from __future__ import annotations

from nas_compression.experiments.reference_report import beats, latency_error_front, reference_report
from nas_compression.tasks.planner import planner_seed_genomes


def _rec(h, quality, latency, ade=1.0):
    metrics = {
        "accuracy": quality,
        "latency_ms": latency,
        "ade_4s": ade,
        "min_ade": ade / 2,
        "mode_accuracy": 0.5,
        "size_bytes": 1000,
        "params": 100,
    }
    return {"hash": h, "metrics": metrics, "objective": quality}


def test_reference_report_finds_faster_no_worse_candidates():
    ref = _rec("ref", 0.5, 10.0)
    faster_same = _rec("a", 0.5, 8.0)
    faster_worse = _rec("b", 0.4, 5.0, ade=1.5)
    slower_better = _rec("c", 0.6, 12.0, ade=0.7)
    assert beats(faster_same, ref) and not beats(faster_worse, ref) and not beats(slower_better, ref)
    assert not beats(ref, ref)
    records = [ref, faster_same, faster_worse, slower_better]
    assert [r["hash"] for r in latency_error_front(records)] == ["b", "a", "c"]
    seeds = planner_seed_genomes("tiny")
    ref["hash"] = seeds[0].hash
    text = reference_report(records, seeds)
    assert "1 candidate(s) beat it" in text and "| faster, no worse | a |" in text and "20 % less" in text
