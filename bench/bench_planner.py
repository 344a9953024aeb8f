#!/usr/bin/env python3
"""Batch-1 latency of the planner network per backend and config, measured in one run on the same inputs.

For every config (tiny, navsim) and backend (torch eager, torch.compile, onnxruntime CPU fp32 and int8) it times
``infer`` (the network only: preprocessing and postprocessing are the same for every backend) over N iterations
after a warm-up, and reports p50/p90/p99, FPS, the speed-up over torch eager and the max |trajectory difference|
from torch eager.

    python bench/bench_planner.py                          # tiny + navsim, all three backends
    python bench/bench_planner.py --configs tiny --iters 200 --json bench.json
    python bench/bench_planner.py --model standin          # the I/O-compatible stand-in network (quick check)
    python bench/bench_planner.py --backends torch onnxruntime onnxruntime-dense-spin onnxruntime-int8

ONNX Runtime rows differ in how the graph is exported (``values``: export_rewrites' sampled value maps or the dense
convolution), whether idle worker threads spin, and int8 quantization; ``onnxruntime-dense-spin`` is the export and
session as they were before the value-map rewrite and passive threads, so one run shows the before/after ratio.
Besides |trajectory diff| (which jumps by metres whenever the best-scored mode changes) every row reports the largest
per-mode difference and whether the best mode is the same as torch eager's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from diffusiondrive_ros.model.config import load_config  # noqa: E402
from diffusiondrive_ros.runtime.backends import make_planner  # noqa: E402
from diffusiondrive_ros.runtime.quantize import DEFAULT_SCOPE, QUANT_SCOPES  # noqa: E402
from diffusiondrive_ros.runtime.standin import (  # noqa: E402
    StandInPlanner,
    build_standin,
    example_inputs,
    export_planner_onnx,
)
from diffusiondrive_ros.runtime.types import PlannerInputs  # noqa: E402


@dataclass(frozen=True)
class OrtVariant:
    """One ONNX Runtime row: export form, spinning threads, int8 format (None: fp32)."""

    values: str
    allow_spinning: bool
    quant_format: str | None = None


# int8: static int8 in the QLinear (QOperator) form, the fastest on ORT CPU, and the symmetric Q/DQ form TensorRT
# needs, run on ORT CPU (there part of its convolutions stay fp32; see runtime/quantize). Both quantize the dense
# export: its whole-map value convolution runs once per frame and quantizes; the sampled form is float loop work.
ORT_VARIANTS = {
    "onnxruntime": OrtVariant("auto", False),
    "onnxruntime-dense-spin": OrtVariant("dense", True),
    "onnxruntime-int8": OrtVariant("dense", False, "qoperator"),
    "onnxruntime-int8-qdq": OrtVariant("dense", False, "qdq"),
}
INT8_BACKENDS = {name: v.quant_format for name, v in ORT_VARIANTS.items() if v.quant_format}
BENCH_BACKENDS = ("torch", "torch_compile", *ORT_VARIANTS)
REFERENCE = "torch"


@dataclass
class Result:
    config: str
    backend: str
    providers: list[str] = field(default_factory=list)
    iterations: int = 0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    fps: float | None = None
    speedup_vs_torch_eager: float | None = None
    max_abs_traj_diff_vs_torch_eager: float | None = None
    max_abs_modes_diff_vs_torch_eager: float | None = None
    same_best_mode_as_torch_eager: bool | None = None
    setup_s: float | None = None
    error: str | None = None


def latency_stats(samples_ms: list[float]) -> dict[str, float]:
    """p50/p90/p99/mean of per-iteration latencies and FPS = 1000 / mean (batch 1)."""
    arr = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    mean = float(arr.mean())
    return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "mean_ms": mean, "fps": 1000.0 / mean}


def time_planners(planners: dict, inputs: PlannerInputs, noise: np.ndarray, iters: int, warmup: int, budget_s: float):
    """Warm every planner up, then time ``infer`` round-robin: one call of each per round, up to ``iters`` rounds or
    until ``budget_s`` per planner is spent (at least 3 rounds).

    Round-robin rather than one backend after the other: on a shared machine the load drifts over minutes, and
    interleaving makes every backend see the same drift, so the speed-up ratios stay meaningful.
    Returns ({name: latencies in ms}, {name: last outputs}).
    """
    outputs = {}
    for name, planner in planners.items():
        for _ in range(warmup):
            outputs[name] = planner.infer(inputs, noise)
    samples: dict[str, list[float]] = {name: [] for name in planners}
    start = time.perf_counter()
    for i in range(iters):
        for name, planner in planners.items():
            t0 = time.perf_counter()
            outputs[name] = planner.infer(inputs, noise)
            samples[name].append((time.perf_counter() - t0) * 1e3)
        if i >= 2 and time.perf_counter() - start > budget_s * len(planners):
            break
    return samples, outputs


def make_bench_planner(name: str, cfg, model, onnx_path: str | None, threads: int):
    """``onnx_path`` is the graph of this row (the fp32 export of its form, or its int8 file)."""
    if name == "torch":
        return make_planner(cfg, "torch", model=model, num_threads=threads)
    if name == "torch_compile":
        planner = make_planner(cfg, "torch", model=model, num_threads=threads, compile=True)
        if not planner.compiled:
            raise RuntimeError("torch.compile failed on this machine (see the log); eager is measured as 'torch'")
        return planner
    if name in ORT_VARIANTS:
        return make_planner(
            cfg,
            "onnxruntime",
            onnx_path,
            providers=["CPUExecutionProvider"],
            intra_op_threads=threads,
            allow_spinning=ORT_VARIANTS[name].allow_spinning,
        )
    raise ValueError(f"unknown bench backend {name!r}; choose from {BENCH_BACKENDS}")


def export_form(name: str, cfg) -> str:
    """The export form a row's graph really has ("auto" resolved for this config), so equal forms share a file."""
    from diffusiondrive_ros.runtime.export_rewrites import should_sample_values

    values = ORT_VARIANTS[name].values
    if values == "auto":
        values = "sampled" if should_sample_values(cfg) else "dense"
    return values


def export_for_bench(config_name: str, cfg, model, wanted: list[str], workdir: Path) -> dict[str, str]:
    """One fp32 export per export form the rows need ({form: path}); a failed export is logged and left out."""
    from diffusiondrive_ros.runtime.export import export_onnx

    paths: dict[str, str] = {}
    for values in sorted({export_form(name, cfg) for name in wanted if name in ORT_VARIANTS}):
        t0 = time.perf_counter()
        try:
            out = workdir / f"{config_name}.{values}.onnx"
            if isinstance(model, StandInPlanner):  # the stand-in has no value maps: one form
                paths[values] = export_planner_onnx(model, cfg, out)
            else:
                report = export_onnx(model, cfg, out, values=values)
                paths[values] = str(out)
                logging.info("%s: %s export rewrites %s", config_name, values, report.rewrites or "none")
            logging.info("%s: exported the %s ONNX in %.1f s", config_name, values, time.perf_counter() - t0)
        except Exception as exc:  # report, keep benchmarking the torch backends
            logging.error("%s: ONNX export (%s) failed: %s", config_name, values, exc)
    return paths


def quantize_for_bench(config_name: str, cfg, fp32_paths: dict[str, str], wanted: list[str], args, workdir: Path):
    """Quantize the matching fp32 graph once per int8 row (synthetic calibration frames)."""
    from diffusiondrive_ros.commands.export import calibration_feeds
    from diffusiondrive_ros.runtime.quantize import quantize_planner

    paths: dict[str, str] = {}
    rows = [name for name in wanted if name in INT8_BACKENDS and export_form(name, cfg) in fp32_paths]
    if not rows:
        return paths
    feeds = calibration_feeds(cfg, args.calibration, args.calibration_samples)
    for name in rows:
        variant = ORT_VARIANTS[name]
        out = workdir / f"{config_name}.int8-{variant.quant_format}.onnx"
        t0 = time.perf_counter()
        try:
            quantize_planner(
                fp32_paths[export_form(name, cfg)], out, feeds, quant_format=variant.quant_format, scope=args.int8_scope
            )
            paths[name] = str(out)
            logging.info("%s: %s quantized in %.1f s", config_name, name, time.perf_counter() - t0)
        except Exception as exc:  # report, keep benchmarking the others
            logging.error("%s: quantization for %s failed: %s", config_name, name, exc)
    return paths


def graph_paths(config_name: str, cfg, model, backends: list[str], args, workdir: Path) -> dict[str, str]:
    """The ONNX file of every ONNX Runtime row that could be built ({row name: path})."""
    fp32 = export_for_bench(config_name, cfg, model, backends, workdir)
    int8 = quantize_for_bench(config_name, cfg, fp32, backends, args, workdir)
    paths = {}
    for name in backends:
        if name in INT8_BACKENDS:
            if name in int8:
                paths[name] = int8[name]
        elif name in ORT_VARIANTS and export_form(name, cfg) in fp32:
            paths[name] = fp32[export_form(name, cfg)]
    return paths


def compare_with_reference(result: Result, out: dict, reference: tuple[Result, dict]) -> None:
    """Speed-up and output differences of one row against torch eager (same inputs, same start noise)."""
    ref_result, ref_out = reference
    result.speedup_vs_torch_eager = round(ref_result.p50_ms / result.p50_ms, 3)
    result.max_abs_traj_diff_vs_torch_eager = float(np.abs(out["trajectory"] - ref_out["trajectory"]).max())
    result.max_abs_modes_diff_vs_torch_eager = float(np.abs(out["modes"] - ref_out["modes"]).max())
    result.same_best_mode_as_torch_eager = bool(
        np.array_equal(out["mode_scores"].argmax(-1), ref_out["mode_scores"].argmax(-1))
    )


def bench_config(config_name: str, backends: list[str], args, workdir: Path) -> list[Result]:
    cfg = load_config(config_name)
    if args.model == "standin":
        model = build_standin(cfg, seed=0)
    else:
        from diffusiondrive_ros.model import build_model

        model = build_model(cfg, seed=0).eval()
    camera, lidar, status, noise = (t.numpy() for t in example_inputs(cfg, seed=1))
    inputs = PlannerInputs(camera=camera, lidar=lidar, status=status)

    graphs = graph_paths(config_name, cfg, model, backends, args, workdir)

    order = [REFERENCE] + [b for b in backends if b != REFERENCE]
    results = {name: Result(config=config_name, backend=name) for name in order}
    planners = {}
    for name in order:
        try:
            graph = graphs.get(name)
            if name in ORT_VARIANTS and graph is None:
                raise RuntimeError("no ONNX file (export or quantization failed)")
            t0 = time.perf_counter()
            planners[name] = make_bench_planner(name, cfg, model, graph, args.threads)
            results[name].setup_s = round(time.perf_counter() - t0, 2)
            results[name].providers = planners[name].providers
        except Exception as exc:  # one failing backend must not hide the others
            _record_error(results[name], exc)
    try:
        samples, outputs = time_planners(planners, inputs, noise, args.iters, args.warmup, args.budget_s)
    finally:
        for planner in planners.values():
            planner.close()
    for name in planners:
        result = results[name]
        result.iterations = len(samples[name])
        for key, value in latency_stats(samples[name]).items():
            setattr(result, key, round(value, 3))
    if REFERENCE in planners:
        for name in planners:
            compare_with_reference(results[name], outputs[name], (results[REFERENCE], outputs[REFERENCE]))
    for name, result in results.items():
        logging.info("%s/%s: %s", config_name, name, result)
    return [results[name] for name in order if name in backends]


def _record_error(result: Result, exc: Exception) -> None:
    result.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    logging.error("%s/%s failed: %s", result.config, result.backend, result.error)


def format_table(results: list[Result]) -> str:
    """One row per (config, backend); 'x eager' is the p50 speed-up over torch eager measured in the same run."""
    header = (
        f"{'config':8} {'backend':22} {'iters':>5} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'FPS':>8} "
        f"{'x eager':>8} {'|dtraj|':>9} {'|dmodes|':>9} {'best':>4}  providers / error"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        if r.error:
            lines.append(f"{r.config:8} {r.backend:22} {'-':>5} {'':>70}  ERROR {r.error}")
            continue
        traj = "" if r.max_abs_traj_diff_vs_torch_eager is None else f"{r.max_abs_traj_diff_vs_torch_eager:.1e}"
        modes = "" if r.max_abs_modes_diff_vs_torch_eager is None else f"{r.max_abs_modes_diff_vs_torch_eager:.1e}"
        best = {None: "", True: "=", False: "diff"}[r.same_best_mode_as_torch_eager]
        lines.append(
            f"{r.config:8} {r.backend:22} {r.iterations:5d} {r.p50_ms:9.2f} {r.p90_ms:9.2f} {r.p99_ms:9.2f} "
            f"{r.fps:8.2f} {r.speedup_vs_torch_eager or 0:8.2f} {traj:>9} {modes:>9} {best:>4}  "
            f"{','.join(r.providers)}"
        )
    return "\n".join(lines)


def machine_info(threads: int) -> dict:
    import onnxruntime as ort

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["tiny", "navsim"])
    parser.add_argument("--backends", nargs="+", default=list(BENCH_BACKENDS), choices=BENCH_BACKENDS)
    parser.add_argument("--iters", type=int, default=50, help="timed iterations per backend (after warm-up)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=60.0, help="timing budget per backend (rounds stop after)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for torch and onnxruntime")
    parser.add_argument("--calibration", default="synthetic", help="int8 rows: calibration source (or a dataset dir)")
    parser.add_argument("--calibration-samples", type=int, default=8, help="int8 rows: calibration frames")
    parser.add_argument(
        "--int8-scope", default=DEFAULT_SCOPE, choices=tuple(QUANT_SCOPES), help="int8 rows: what is quantized"
    )
    parser.add_argument("--model", choices=("real", "standin"), default="real")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--workdir", type=Path, help="keep the exported ONNX files here (default: a temp dir)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if args.iters < 1 or args.warmup < 0:
        parser.error("--iters must be >= 1 and --warmup >= 0")

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench_planner_") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for config_name in args.configs:
            results += bench_config(config_name, args.backends, args, workdir)
    print(format_table(results))
    if args.json:
        payload = {
            "machine": machine_info(args.threads),
            "model": args.model,
            "iters": args.iters,
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0 if all(r.error is None for r in results if r.backend != "torch_compile") else 1


if __name__ == "__main__":
    sys.exit(main())
