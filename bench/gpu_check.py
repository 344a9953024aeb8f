#!/usr/bin/env python3
"""One-shot GPU check of the navsim planner: FPS and parity of every GPU path available on the machine.

Sections (each guarded: a failure is reported and the next section runs):
  torch eager fp32 (the reference) | CUDA-graph replay of eager fp32 | fp16 / bf16 autocast |
  onnxruntime CUDA / TensorRT EPs (only if this onnxruntime offers them; otherwise a few CPU runs check the graph) |
  native TensorRT fp32 / fp16 (+ CUDA graph) (only if `tensorrt` imports) | torch.compile (last; skipped on low time).
Parity = max |trajectory - fp32 eager trajectory| on the same inputs, plus whether the best mode is the same.

Runs from a plain checkout (the repo root is put on sys.path), installs nothing and keeps inside --budget-s
(default 420 s, for an 8-minute slot). Needs torch with CUDA; numpy/yaml/onnxruntime/tensorrt are used if present.

    python3 bench/gpu_check.py [--config navsim] [--iters 50] [--budget-s 420] [--json out.json] [--no-compile]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

T_START = time.monotonic()
RESULTS: list[dict] = []


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def elapsed() -> float:
    return time.monotonic() - T_START


def log(msg: str) -> None:
    print(f"[{elapsed():6.1f}s] {msg}", flush=True)


def record(section: str, **fields) -> dict:
    row = {"section": section, **fields}
    RESULTS.append(row)
    shown = ", ".join(f"{k}={v}" for k, v in fields.items() if k not in ("traceback",))
    log(f"{section}: {shown}")
    return row


def guarded(section: str, budget_s: float, need_s: float):
    """Decorator-less guard: run fn(), record an error row (with the traceback tail) instead of raising."""

    def run(fn):
        left = budget_s - elapsed()
        if left < need_s:
            record(section, status="skipped", reason=f"only {left:.0f} s left of the budget, needs ~{need_s:.0f} s")
            return None
        try:
            return fn()
        except Exception as exc:
            tail = traceback.format_exc().strip().splitlines()[-6:]
            record(section, status="error", error=f"{type(exc).__name__}: {str(exc)[:400]}", traceback=tail)
            return None
        finally:
            if torch.cuda.is_available():
                with contextlib.suppress(Exception):
                    torch.cuda.synchronize()
                    torch.cuda.empty_cache()

    return run


# -- config and model (with fallbacks for a machine without pyyaml or with a broken model package) ------------------
def load_model_config(name: str):
    try:
        import yaml  # noqa: F401
    except ImportError:
        stub = types.ModuleType("yaml")

        def safe_load(*_a, **_k):
            raise RuntimeError("pyyaml is not installed")

        stub.safe_load, stub.safe_dump = safe_load, safe_load
        sys.modules["yaml"] = stub
    from diffusiondrive_ros.model.config import ModelConfig, load_config

    try:
        return load_config(name)
    except Exception as exc:
        if name != "navsim":
            raise
        log(f"load_config('navsim') failed ({exc}); using ModelConfig() defaults, which are the navsim layout")
        return ModelConfig()


def build_network(cfg, device: torch.device):
    """The real model (seed 0); the I/O-compatible stand-in only if the model package cannot be imported."""
    try:
        from diffusiondrive_ros.model import build_model

        return build_model(cfg, seed=0).eval().to(device), "diffusiondrive"
    except ImportError as exc:
        log(f"model package import failed ({exc}); falling back to the stand-in network (numbers are NOT the model's)")
        from diffusiondrive_ros.runtime.standin import build_standin

        return build_standin(cfg, seed=0).to(device), "standin"


def make_inputs(cfg, device: torch.device, seed: int = 1) -> tuple[torch.Tensor, ...]:
    from diffusiondrive_ros.runtime.standin import example_inputs

    return tuple(t.to(device) for t in example_inputs(cfg, seed=seed))


# -- timing and parity -----------------------------------------------------------------------------------------------
def time_cuda(fn, iters: int, warmup: int, max_s: float) -> dict:
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    t_end = time.perf_counter() + max_s
    for i in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        samples.append((time.perf_counter() - t0) * 1e3)
        if i >= 4 and time.perf_counter() > t_end:
            break
    samples.sort()
    pct = lambda q: samples[min(len(samples) - 1, int(math.ceil(q * len(samples))) - 1)]  # noqa: E731
    mean = sum(samples) / len(samples)
    return {"iters": len(samples), "p50_ms": round(pct(0.5), 3), "p90_ms": round(pct(0.9), 3),
            "p99_ms": round(pct(0.99), 3), "fps": round(1000.0 / mean, 1)}


def parity(out: dict, ref: dict) -> dict:
    traj = out["trajectory"].float().to(ref["trajectory"].device)
    scores = out["mode_scores"].float().to(ref["mode_scores"].device)
    return {
        "max_abs_traj_diff": float((traj - ref["trajectory"]).abs().max()),
        "max_abs_score_diff": float((scores - ref["mode_scores"]).abs().max()),
        "same_best_mode": bool((scores.argmax(-1) == ref["mode_scores"].argmax(-1)).all()),
    }


# -- sections --------------------------------------------------------------------------------------------------------
def environment() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__}
    info["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        capability = ".".join(map(str, torch.cuda.get_device_capability(0)))
        info.update(gpu=torch.cuda.get_device_name(0), capability=capability, cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    for module in ("numpy", "yaml", "onnx", "onnxscript", "onnxruntime", "tensorrt", "triton"):
        try:
            info[module] = getattr(__import__(module), "__version__", "present")
        except Exception as exc:
            info[module] = f"absent ({type(exc).__name__})"
    try:
        import onnxruntime as ort

        info["ort_providers"] = ort.get_available_providers()
    except Exception:
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="navsim")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--budget-s", type=float, default=420.0, help="the whole script stays inside this")
    parser.add_argument("--section-s", type=float, default=20.0, help="max timing seconds per section")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile section")
    parser.add_argument("--no-trt-fp32", action="store_true", help="native TensorRT: build the fp16 engine only")
    parser.add_argument("--dry-run-cpu", action="store_true",
                        help="smoke-test the script on a CPU machine (CUDA-only sections report errors)")
    parser.add_argument("--json", type=Path, default=Path(os.environ["OUT"]) / "gpu_check.json"
                        if os.environ.get("OUT") else None)
    args = parser.parse_args(argv)
    budget = args.budget_s

    env = environment()
    record("environment", **env)
    if not torch.cuda.is_available() and not args.dry_run_cpu:
        record("abort", status="error", error="torch sees no CUDA device")
        return finish(args, 2)
    device = torch.device("cpu") if args.dry_run_cpu else torch.device("cuda", 0)
    torch.backends.cudnn.benchmark = True

    cfg = load_model_config(args.config)
    model, model_kind = build_network(cfg, device)
    inputs = make_inputs(cfg, device)
    n_params = sum(p.numel() for p in model.parameters())
    record("model", kind=model_kind, config=cfg.name, params_m=round(n_params / 1e6, 2))
    ref: dict = {}
    timing = dict(iters=args.iters, warmup=args.warmup, max_s=args.section_s)

    # 1. eager fp32: the reference
    def eager_fp32():
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        with torch.inference_mode():
            out = model(*inputs)
            ref.update({k: v.float().clone() for k, v in out.items()})
            stats = time_cuda(lambda: model(*inputs), **timing)
        record("torch_eager_fp32", status="ok", **stats)

    guarded("torch_eager_fp32", budget, 20)(eager_fp32)
    if not ref:
        return finish(args, 1)

    # 2. eager with TF32 allowed (what most deployments get by default)
    def eager_tf32():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        try:
            with torch.inference_mode():
                out = model(*inputs)
                stats = time_cuda(lambda: model(*inputs), **timing)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        record("torch_eager_tf32", status="ok", **stats, **parity(out, ref))

    guarded("torch_eager_tf32", budget, 20)(eager_tf32)

    # 3. CUDA-graph capture of the eager fp32 forward
    def cuda_graph():
        static_in = [t.clone() for t in inputs]
        with torch.inference_mode():
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    model(*static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = model(*static_in)
            for dst, src in zip(static_in, inputs):
                dst.copy_(src)
            graph.replay()
            sync()
            par = parity(static_out, ref)
            stats = time_cuda(graph.replay, **timing)
        record("torch_cuda_graph_fp32", status="ok", **stats, **par)

    guarded("torch_cuda_graph_fp32", budget, 25)(cuda_graph)

    # 4. autocast fp16 / bf16 (eager, then CUDA graph)
    for dtype_name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):

        def autocast(dtype=dtype, dtype_name=dtype_name):
            with torch.inference_mode(), torch.autocast("cuda", dtype=dtype):
                out = model(*inputs)
                par = parity(out, ref)
                stats = time_cuda(lambda: model(*inputs), **timing)
            record(f"torch_autocast_{dtype_name}", status="ok", **stats, **par)

        guarded(f"torch_autocast_{dtype_name}", budget, 20)(autocast)

    def cuda_graph_bf16():
        static_in = [t.clone() for t in inputs]
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    model(*static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = model(*static_in)
            graph.replay()
            sync()
            par = parity(static_out, ref)
            stats = time_cuda(graph.replay, **timing)
        record("torch_cuda_graph_bf16", status="ok", **stats, **par)

    guarded("torch_cuda_graph_bf16", budget, 25)(cuda_graph_bf16)

    # 5. ONNX export (needed by onnxruntime and native TensorRT)
    workdir = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    onnx_path: list[Path] = []

    def export():
        from diffusiondrive_ros.runtime.standin import export_planner_onnx

        cpu_model, _ = build_network(cfg, torch.device("cpu"))
        t0 = time.perf_counter()
        path = Path(export_planner_onnx(cpu_model, cfg, workdir / f"{cfg.name}.onnx"))
        onnx_path.append(path)
        record("onnx_export", status="ok", seconds=round(time.perf_counter() - t0, 1),
               mb=round(path.stat().st_size / 2**20, 1))

    want_ort = "absent" not in str(env.get("onnxruntime"))
    want_trt = "absent" not in str(env.get("tensorrt"))
    if want_ort or want_trt:
        guarded("onnx_export", budget, 60)(export)

    # 6. onnxruntime (GPU providers if offered; a CPU parity check otherwise)
    def onnxruntime_section():
        import numpy as np

        from diffusiondrive_ros.runtime.backends import make_planner
        from diffusiondrive_ros.runtime.types import PlannerInputs

        camera, lidar, status, noise = (t.cpu().numpy() for t in inputs)
        feeds = PlannerInputs(camera, lidar, status)
        available = env.get("ort_providers", [])
        runs = []
        if "CUDAExecutionProvider" in available:
            runs.append(("onnxruntime_cuda", {"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}, 20))
        if "TensorrtExecutionProvider" in available:
            runs.append(("onnxruntime_trt_fp16", {
                "providers": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
                "trt_fp16": True, "trt_engine_cache_dir": str(workdir / "ort_trt")}, 150))
        if not runs:
            record("onnxruntime_gpu", status="skipped", reason=f"this onnxruntime offers only {available}")
            runs.append(("onnxruntime_cpu", {"providers": ["CPUExecutionProvider"], "intra_op_threads": 0}, 20))
        for name, options, need in runs:

            def one(name=name, options=options):
                planner = make_planner(cfg, "onnxruntime", onnx_path[0], **options)
                out = planner.infer(feeds, noise)
                par = parity({k: torch.from_numpy(np.asarray(v)) for k, v in out.items()}, ref)
                iters = args.iters if name != "onnxruntime_cpu" else 5
                stats = time_cuda(lambda: planner.infer(feeds, noise), iters=iters, warmup=2, max_s=args.section_s)
                record(name, status="ok", providers=planner.providers, **stats, **par)

            guarded(name, budget, need)(one)

    if onnx_path and want_ort:
        guarded("onnxruntime", budget, 20)(onnxruntime_section)

    # 7. native TensorRT through the engine cache
    def trt_section(precision: str, cuda_graph: bool):
        from diffusiondrive_ros.runtime.backends.trt_engine import BuildOptions, make_runner

        info: dict = {}
        t0 = time.perf_counter()
        runner = make_runner(onnx_path[0], cache_dir=workdir / "engines", options=BuildOptions(precision=precision),
                             cuda_graph=cuda_graph, on_engine=lambda c: info.update(built=c.built))
        setup_s = round(time.perf_counter() - t0, 1)
        feeds = dict(zip(("camera", "lidar", "status", "noise"), inputs))
        feeds = {k: v.to(runner.buffers[k].dtype) for k, v in feeds.items()}
        out = {k: v.clone() for k, v in runner.run(feeds).items()}
        par = parity(out, ref)
        stats = time_cuda(lambda: runner.run(feeds, synchronize=False), **timing)
        name = f"tensorrt_{precision}" + ("_cuda_graph" if runner.uses_cuda_graph else "")
        record(name, status="ok", setup_s=setup_s, engine_built=info.get("built"), **stats, **par)
        runner.close()

    if onnx_path and want_trt:
        precisions = ["fp16"] if args.no_trt_fp32 else ["fp32", "fp16"]
        for precision in precisions:
            guarded(f"tensorrt_{precision}", budget, 120)(lambda p=precision: trt_section(p, cuda_graph=False))
        guarded("tensorrt_fp16_cuda_graph", budget, 20)(lambda: trt_section("fp16", cuda_graph=True))
    elif not want_trt:
        record("tensorrt", status="skipped", reason=f"tensorrt {env.get('tensorrt')}")

    # 8. torch.compile (Triton); last because compiling a 60 M-parameter model takes minutes
    def compiled():
        compiled_model = torch.compile(model, mode="max-autotune-no-cudagraphs")
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = compiled_model(*inputs)
            sync()
            compile_s = round(time.perf_counter() - t0, 1)
            par = parity(out, ref)
            stats = time_cuda(lambda: compiled_model(*inputs), **timing)
        record("torch_compile_fp32", status="ok", compile_s=compile_s, **stats, **par)

    if not args.no_compile:
        guarded("torch_compile_fp32", budget, 150)(compiled)

    return finish(args, 0)


def finish(args, code: int) -> int:
    print("\n=== summary ===")
    print(f"{'section':28} {'status':8} {'p50 ms':>8} {'FPS':>8} {'|dtraj|':>9} {'best=':>5}")
    for row in RESULTS:
        if row["section"] in ("environment", "model"):
            continue
        diff = row.get("max_abs_traj_diff")
        print(f"{row['section']:28} {row.get('status', ''):8} {row.get('p50_ms', ''):>8} {row.get('fps', ''):>8} "
              f"{'' if diff is None else f'{diff:.2e}':>9} {str(row.get('same_best_mode', '')):>5}  "
              f"{row.get('error') or row.get('reason') or ''}")
    print(f"total {elapsed():.1f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(RESULTS, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return code


if __name__ == "__main__":
    sys.exit(main())
