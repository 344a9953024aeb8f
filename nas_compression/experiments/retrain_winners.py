"""``nas-compress retrain-winners``: a planner search's winners against its hand-made references, like for like.

During a search children inherit their parent's weights and every candidate is timed once, whenever it happens
to finish. Before claiming "faster at no worse validation error", this retrains the references and the winners
from scratch with the same proxy budget and the same seed, then times all their Q/DQ graphs interleaved.
Writes ``compare.md`` and ``compare.json`` into the search's results directory.
"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from diffusiondrive_ros.model import build_model, load_config

from ..measure.latency import TimingConfig, interleaved_latency
from ..space.genome import genome_from_json
from ..strategies.evolution import ResultsDir
from ..tasks.planner import PlannerBudget, evaluate_planner, quality_from_error, timing_feeds
from .reference_report import beats

COMPARE_FILE = "compare.md"


def pick_challengers(records: list[dict], references: list[dict], top: int) -> list[dict]:
    """Up to ``top`` candidates that beat a reference during the search (fastest first); if none does, the
    fastest other candidates, so the check still says how close they came."""
    ref_hashes = {r["hash"] for r in references}
    others = [r for r in records if r["hash"] not in ref_hashes]
    winners = sorted(
        (r for r in others if any(beats(r, ref) for ref in references)), key=lambda r: r["metrics"]["latency_ms"]
    )
    if not winners:
        winners = sorted(others, key=lambda r: r["metrics"]["latency_ms"])
    return winners[:top]


def retrain_winners(results: str | Path, top: int = 1, seed: int = 0, rounds: int = 10) -> list[dict]:
    """Retrain references + challengers from scratch (same budget, same seed), re-time interleaved; returns rows."""
    out = ResultsDir(results)
    config = json.loads((out.root / "config.json").read_text())
    if config.get("task") != "planner":
        raise ValueError(f"{out.root} is not a planner search (task {config.get('task')!r})")
    settings = config["task_settings"]
    budget = PlannerBudget(**settings["budget"])
    records = out.load()
    by_hash = {r["hash"]: r for r in records}
    references = [by_hash[h] for h in config.get("seeds", []) if h in by_hash]
    if not references:
        raise ValueError(f"{out.root} has no evaluated reference (seed) genome yet")
    entries = [("reference", r) for r in references] + [
        ("challenger", r) for r in pick_challengers(records, references, top)
    ]
    onnx_dir = out.root / "compare"
    rows = []
    for role, rec in tqdm(entries, desc="retrain from scratch", unit="cand"):
        onnx_path = onnx_dir / f"{rec['hash']}.onnx"
        job = {
            "genome": rec["genome"],
            "data": settings["data"],
            "budget": settings["budget"],
            "seed": seed,
            "onnx_out": str(onnx_path),
        }
        m = evaluate_planner(job)
        rows.append(
            {
                "role": role,
                "hash": rec["hash"],
                "genome": rec["genome"],
                "search_metrics": rec["metrics"],
                "scratch_metrics": m,
                "onnx": str(onnx_path),
            }
        )
    feeds = timing_feeds(build_model(load_config(budget.base_config), seed=0))
    timing = TimingConfig(repeats=max(5, budget.latency_repeats // 5))
    latency = interleaved_latency({r["hash"]: r["onnx"] for r in rows}, feeds, timing, rounds)
    for r in rows:
        r["interleaved_latency_ms"] = latency[r["hash"]]
        r["scratch_quality"] = quality_from_error(r["scratch_metrics"][budget.quality_metric])
    (out.root / "compare.json").write_text(json.dumps(rows, indent=2))
    (out.root / COMPARE_FILE).write_text(compare_table(rows, budget, seed, rounds))
    return rows


def compare_table(rows: list[dict], budget: PlannerBudget, seed: int, rounds: int) -> str:
    ref = rows[0]
    lines = [
        "# Like-for-like: from-scratch training at the search's budget, interleaved timing",
        "",
        f"Every row trained from scratch for {budget.train_steps} steps (batch {budget.batch_size}, seed {seed}) on "
        f"{budget.train_samples or 'all'} train samples; quantized errors on {budget.val_samples or 'all'} val "
        f"samples; latency: median of {rounds} interleaved rounds (ONNX Runtime CPU, 1 thread, batch 1).",
        "",
        "| role | genome | L2 ade_4s (m) | minADE (m) | mode acc | latency (ms) | vs first reference | "
        "genome summary |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        m = r["scratch_metrics"]
        verdict = "-"
        if r is not ref:
            faster = r["interleaved_latency_ms"] < ref["interleaved_latency_ms"]
            no_worse = r["scratch_quality"] >= ref["scratch_quality"]
            verdict = f"{'faster' if faster else 'slower'}, {'no worse' if no_worse else 'worse'}"
        lines.append(
            f"| {r['role']} | {r['hash']} | {m['ade_4s']:.3f} | {m['min_ade']:.3f} | {m['mode_accuracy']:.3f} | "
            f"{r['interleaved_latency_ms']:.2f} | {verdict} | {genome_from_json(r['genome']).summary()} |"
        )
    return "\n".join(lines) + "\n"
