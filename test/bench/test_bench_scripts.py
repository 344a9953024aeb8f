"""The benchmark scripts run end to end on the stand-in network and produce sane numbers."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def bench_script(repo_root: Path):
    """Imports a script of bench/ (not a package) by its name, e.g. ``bench_script("bench_planner")``."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, repo_root / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is created
        spec.loader.exec_module(module)
        return module

    return load


def test_latency_stats(bench_script) -> None:
    bench = bench_script("bench_planner")
    stats = bench.latency_stats([10.0] * 98 + [20.0, 30.0])
    assert stats["p50_ms"] == 10.0 and stats["p99_ms"] > 19.0
    assert stats["fps"] == pytest.approx(1000.0 / 10.3)


def test_bench_planner_json(tmp_path: Path, capsys, bench_script) -> None:
    bench = bench_script("bench_planner")
    out = tmp_path / "bench.json"
    args = "--model standin --configs tiny --backends torch onnxruntime onnxruntime-dense-spin --iters 5 --warmup 1"
    code = bench.main([*args.split(), "--json", str(out)])
    assert code == 0
    payload = json.loads(out.read_text())
    rows = {r["backend"]: r for r in payload["results"]}
    assert set(rows) == {"torch", "onnxruntime", "onnxruntime-dense-spin"}
    assert rows["torch"]["speedup_vs_torch_eager"] == 1.0
    for name in ("onnxruntime", "onnxruntime-dense-spin"):
        assert rows[name]["providers"] == ["CPUExecutionProvider"]
        assert rows[name]["max_abs_traj_diff_vs_torch_eager"] < 1e-4
        assert rows[name]["max_abs_modes_diff_vs_torch_eager"] < 1e-4
        assert rows[name]["same_best_mode_as_torch_eager"] is True
    for row in rows.values():
        assert row["error"] is None and row["iterations"] == 5 and row["p50_ms"] <= row["p99_ms"]
    assert "onnxruntime-dense-spin" in capsys.readouterr().out


def test_bench_export_forms_follow_the_config(bench_script, tiny_config) -> None:
    """'auto' rows share the dense file where sampling would not pay (tiny), get their own where it does (navsim)."""
    from diffusiondrive_ros.model.config import load_config

    bench = bench_script("bench_planner")
    tiny, navsim = tiny_config, load_config("navsim")
    assert bench.export_form("onnxruntime", tiny) == bench.export_form("onnxruntime-dense-spin", tiny) == "dense"
    assert bench.export_form("onnxruntime", navsim) == "sampled"
    assert bench.export_form("onnxruntime-int8", navsim) == "dense"


def test_vanilla_ddim_schedule(bench_script, tiny_config) -> None:
    schedule = bench_script("bench_denoise").vanilla_ddim_schedule(tiny_config, steps=20)
    timesteps = [s.timestep for s in schedule.steps]
    assert timesteps == list(range(950, -1, -50))
    assert schedule.steps[-1].sqrt_alpha_prev == 1.0 and schedule.steps[-1].sqrt_one_minus_alpha_prev == 0.0
    assert all(a.sqrt_alpha < b.sqrt_alpha for a, b in zip(schedule.steps, schedule.steps[1:]))


def test_gpu_check_reports_instead_of_crashing_without_cuda(tmp_path: Path, bench_script) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine runs the real check")
    gpu_check = bench_script("gpu_check")
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--json", str(out)]) == 2
    rows = json.loads(out.read_text())
    assert rows[0]["section"] == "environment" and rows[-1]["error"] == "torch sees no CUDA device"


@pytest.mark.slow
@pytest.mark.ros
def test_bench_node_runs_drivers_node_and_listener(tmp_path: Path, bench_script) -> None:
    """bench_node end to end at a small size: five driver processes, the node, Paths back, a complete report."""
    pytest.importorskip("rclpy")
    bench = bench_script("bench_node")
    out = tmp_path / "bench_node.json"
    assert bench.main(["--duration", "2", "--warmup", "1", "--rate", "10", "--camera-size", "480x270",
                       "--points", "2000", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["drivers"] == "per-sensor" and result["driver_publish"] == "rcl"
    assert set(result["publish_ms"]) == set(bench.SENSOR_INPUTS)
    assert result["frames_in_window"] == 20 and result["frames_planned_in_window"] >= 15
    assert 0 < result["model_infer_ms"]["p50"] < result["e2e_ms"]["p50"] < 1000
    assert result["overhead_ms"]["p50"] == pytest.approx(result["e2e_ms"]["p50"] - result["model_infer_ms"]["p50"])
    assert {"callback_delay", "wait_after_last_input", "input_age.odometry"} <= set(result["node_stage_ms"])
