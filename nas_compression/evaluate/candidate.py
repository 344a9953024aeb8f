"""One candidate evaluation as a picklable function of a JSON-like job (runs in any Evaluator worker).

Train briefly (inheriting the parent's weights where shapes match), quantize, measure quality on the proxy task,
deployed size in bytes, and latency from the per-layer table; save the float weights for the children to inherit.
"""

from __future__ import annotations

import time
from pathlib import Path

from safetensors.torch import load_file, save_file

from ..quant.export import predicted_weight_bytes
from ..space.genome import genome_from_json
from .classify import ClassifyBudget, accuracy, load_dataset, train_and_quantize
from .latency import LatencyTable, TimingConfig, classifier_units


def evaluate_classify(job: dict) -> dict:
    """job: genome (JSON), dataset, budget (dict), seed, parent_weights (path|None), weights_out, latency_table."""
    t0 = time.perf_counter()
    genome = genome_from_json(job["genome"])
    data = load_dataset(job.get("dataset", "mnist"))
    parent = job.get("parent_weights")
    parent_state = load_file(parent) if parent and Path(parent).is_file() else None
    model, float_state, info = train_and_quantize(
        genome, data, ClassifyBudget(**job.get("budget", {})), parent_state, seed=int(job.get("seed", 0))
    )
    acc = accuracy(model, data.x_val, data.y_val)
    if job.get("weights_out"):
        Path(job["weights_out"]).parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in float_state.items()}, job["weights_out"])
    table = LatencyTable.load(job.get("latency_table"), TimingConfig())
    known = dict(table.entries)
    latency = table.predict(classifier_units(genome, data.image_size))
    return {
        "accuracy": acc,
        "float_accuracy": info["float_accuracy"],
        "size_bytes": predicted_weight_bytes(model),
        "latency_ms": latency,
        "params": sum(p.numel() for p in model.parameters()),
        "inherited_tensors": info["inherited_tensors"],
        "eval_seconds": time.perf_counter() - t0,
        "new_latency_entries": {k: v for k, v in table.entries.items() if k not in known},
    }
