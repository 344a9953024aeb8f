"""One candidate evaluation as a picklable function of a JSON-like job (runs in any Evaluator worker).

Train briefly (inheriting the parent's weights where shapes match), quantize, measure quality on the proxy task,
deployed size in bytes, and latency (classification: from the per-layer table; planner: the whole Q/DQ graph
measured end to end); save the float weights for the children to inherit.
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


def evaluate_planner(job: dict) -> dict:
    """job: genome (JSON), data (folder), budget (PlannerBudget dict), seed, parent_weights, weights_out, onnx_out.

    ``accuracy`` is the search quality 1 / (1 + error) of the quantized planner (see evaluate.planner); the
    displacement errors (metres) and mode accuracy are reported beside it, float and quantized.
    """
    from .planner import PlannerBudget, measured_planner_latency, quality_from_error, train_and_quantize_planner

    t0 = time.perf_counter()
    genome = genome_from_json(job["genome"])
    budget = PlannerBudget(**job.get("budget", {}))
    parent = job.get("parent_weights")
    parent_state = load_file(parent) if parent and Path(parent).is_file() else None
    model, cfg, float_state, info = train_and_quantize_planner(
        genome, job["data"], budget, parent_state, seed=int(job.get("seed", 0))
    )
    if job.get("weights_out"):
        Path(job["weights_out"]).parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in float_state.items()}, job["weights_out"])
    quant, flt = info["quant"], info["float"]
    latency = measured_planner_latency(model, cfg, TimingConfig(repeats=budget.latency_repeats), job.get("onnx_out"))
    return {
        "accuracy": quality_from_error(quant[budget.quality_metric]),
        "float_accuracy": quality_from_error(flt[budget.quality_metric]),
        "ade_4s": quant["ade_4s"],
        "fde_4s": quant["fde_4s"],
        "min_ade": quant["min_ade"],
        "mode_accuracy": quant["mode_accuracy"],
        "float_ade_4s": flt["ade_4s"],
        "float_min_ade": flt["min_ade"],
        "float_mode_accuracy": flt["mode_accuracy"],
        "first_loss": info["first_loss"],
        "last_loss": info["last_loss"],
        "size_bytes": predicted_weight_bytes(model),
        "latency_ms": latency,
        "params": sum(p.numel() for p in model.parameters()),
        "inherited_tensors": info["inherited_tensors"],
        "eval_seconds": time.perf_counter() - t0,
    }
