#!/usr/bin/env python3
"""Batch-1 latency of the planner network per backend and config, measured in one run on the same inputs.

For every config (tiny, navsim) and backend (torch eager, torch.compile, onnxruntime CPU fp32 and int8) it times
``infer`` (the network only: preprocessing and postprocessing are the same for every backend) over N iterations
after a warm-up, and reports p50/p90/p99, FPS, the speed-up over torch eager and the max |trajectory difference|
from torch eager.

    python bench/bench_planner.py                          # tiny + navsim, all three backends
    python bench/bench_planner.py --configs tiny --iters 200 --json bench.json
    python bench/bench_planner.py --model standin          # the I/O-compatible stand-in network (quick check)
    python bench/bench_planner.py --backends torch onnxruntime onnxruntime-int8 onnxruntime-int8-qdq
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
from diffusiondrive_ros.runtime.backends.testing import build_standin, example_inputs, export_planner_onnx  # noqa: E402
from diffusiondrive_ros.runtime.types import PlannerInputs  # noqa: E402

# onnxruntime-int8: static int8 in the QLinear (QOperator) form, the fastest on ORT CPU; onnxruntime-int8-qdq: the
# symmetric Q/DQ form TensorRT needs, run on ORT CPU (there part of its convolutions stay fp32; see runtime/quantize).
INT8_BACKENDS = {"onnxruntime-int8": "qoperator", "onnxruntime-int8-qdq": "qdq"}
BENCH_BACKENDS = ("torch", "torch_compile", "onnxruntime", *INT8_BACKENDS)
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
    setup_s: float | None = None
    error: str | None = None


def latency_stats(samples_ms: list[float]) -> dict[str, float]:
    """p50/p90/p99/mean of per-iteration latencies and FPS = 1000 / mean (batch 1)."""
    arr = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    mean = float(arr.mean())
    return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "mean_ms": mean, "fps": 1000.0 / mean}


def time_planner(planner, inputs: PlannerInputs, noise: np.ndarray, iters: int, warmup: int, budget_s: float):
    """Warm up, then time ``infer`` up to ``iters`` times or until ``budget_s`` is spent (at least 3 samples)."""
    for _ in range(warmup):
        out = planner.infer(inputs, noise)
    samples = []
    start = time.perf_counter()
    for i in range(iters):
        t0 = time.perf_counter()
        out = planner.infer(inputs, noise)
        samples.append((time.perf_counter() - t0) * 1e3)
        if i >= 2 and time.perf_counter() - start > budget_s:
            break
    return samples, out


def make_bench_planner(name: str, cfg, model, onnx_path: str | None, threads: int):
    """``onnx_path`` is the graph of this backend (fp32 for onnxruntime, the int8 file for the int8 rows)."""
    if name == "torch":
        return make_planner(cfg, "torch", model=model, num_threads=threads)
    if name == "torch_compile":
        planner = make_planner(cfg, "torch", model=model, num_threads=threads, compile=True)
        if not planner.compiled:
            raise RuntimeError("torch.compile failed on this machine (see the log); eager is measured as 'torch'")
        return planner
    if name == "onnxruntime" or name in INT8_BACKENDS:
        return make_planner(cfg, "onnxruntime", onnx_path, providers=["CPUExecutionProvider"], intra_op_threads=threads)
    raise ValueError(f"unknown bench backend {name!r}; choose from {BENCH_BACKENDS}")


def quantize_for_bench(config_name: str, cfg, onnx_path, wanted: list[str], args, workdir: Path) -> dict[str, str]:
    """Quantize the exported fp32 graph once per int8 row (synthetic calibration frames)."""
    from diffusiondrive_ros.runtime.quantize import calibration_feeds, quantize_planner

    paths: dict[str, str] = {}
    if not wanted or onnx_path is None:
        return paths
    feeds = calibration_feeds(cfg, args.calibration, args.calibration_samples)
    for name in wanted:
        out = workdir / f"{config_name}.int8-{INT8_BACKENDS[name]}.onnx"
        t0 = time.perf_counter()
        try:
            quantize_planner(onnx_path, out, feeds, quant_format=INT8_BACKENDS[name])
            paths[name] = str(out)
            logging.info("%s: %s quantized in %.1f s", config_name, name, time.perf_counter() - t0)
        except Exception as exc:  # report, keep benchmarking the others
            logging.error("%s: quantization for %s failed: %s", config_name, name, exc)
    return paths


def bench_config(config_name: str, backends: list[str], args, workdir: Path) -> list[Result]:
    cfg = load_config(config_name)
    if args.model == "standin":
        model = build_standin(cfg, seed=0)
    else:
        from diffusiondrive_ros.model import build_model

        model = build_model(cfg, seed=0).eval()
    camera, lidar, status, noise = (t.numpy() for t in example_inputs(cfg, seed=1))
    inputs = PlannerInputs(camera=camera, lidar=lidar, status=status)

    onnx_path = None
    if any(b == "onnxruntime" or b in INT8_BACKENDS for b in backends):
        t0 = time.perf_counter()
        try:
            onnx_path = export_planner_onnx(model, cfg, workdir / f"{config_name}.onnx")
            logging.info("%s: exported ONNX in %.1f s", config_name, time.perf_counter() - t0)
        except Exception as exc:  # report, keep benchmarking the torch backends
            logging.error("%s: ONNX export failed: %s", config_name, exc)
    int8_paths = quantize_for_bench(
        config_name, cfg, onnx_path, [b for b in backends if b in INT8_BACKENDS], args, workdir
    )

    results, reference = [], None
    for name in [REFERENCE] + [b for b in backends if b != REFERENCE]:
        result = Result(config=config_name, backend=name)
        try:
            graph = int8_paths.get(name) if name in INT8_BACKENDS else onnx_path
            if (name == "onnxruntime" or name in INT8_BACKENDS) and graph is None:
                raise RuntimeError("no ONNX file (export or quantization failed)")
            t0 = time.perf_counter()
            planner = make_bench_planner(name, cfg, model, graph, args.threads)
            result.setup_s = round(time.perf_counter() - t0, 2)
            samples, out = time_planner(planner, inputs, noise, args.iters, args.warmup, args.budget_s)
            result.providers = planner.providers
            result.iterations = len(samples)
            for key, value in latency_stats(samples).items():
                setattr(result, key, round(value, 3))
            if name == REFERENCE:
                reference = result, out["trajectory"]
            if reference is not None:
                ref_result, ref_traj = reference
                result.speedup_vs_torch_eager = round(ref_result.p50_ms / result.p50_ms, 3)
                result.max_abs_traj_diff_vs_torch_eager = float(np.abs(out["trajectory"] - ref_traj).max())
            planner.close()
        except Exception as exc:  # one failing backend must not hide the others
            result.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            logging.error("%s/%s failed: %s", config_name, name, result.error)
        if name in backends:
            results.append(result)
        logging.info("%s/%s: %s", config_name, name, result)
    return results


def format_table(results: list[Result]) -> str:
    header = (
        f"{'config':8} {'backend':20} {'iters':>5} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'FPS':>8} "
        f"{'x eager':>8} {'|dtraj|':>9}  providers / error"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        if r.error:
            lines.append(
                f"{r.config:8} {r.backend:20} {'-':>5} {'':>9} {'':>9} {'':>9} {'':>8} {'':>8} {'':>9}  ERROR {r.error}"
            )
            continue
        diff = "" if r.max_abs_traj_diff_vs_torch_eager is None else f"{r.max_abs_traj_diff_vs_torch_eager:.1e}"
        lines.append(
            f"{r.config:8} {r.backend:20} {r.iterations:5d} {r.p50_ms:9.2f} {r.p90_ms:9.2f} {r.p99_ms:9.2f} "
            f"{r.fps:8.2f} {r.speedup_vs_torch_eager or 0:8.2f} {diff:>9}  {','.join(r.providers)}"
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
    parser.add_argument("--budget-s", type=float, default=60.0, help="stop timing a backend after this long")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for torch and onnxruntime")
    parser.add_argument("--calibration", default="synthetic", help="int8 rows: calibration source (or a dataset dir)")
    parser.add_argument("--calibration-samples", type=int, default=8, help="int8 rows: calibration frames")
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
