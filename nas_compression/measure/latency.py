"""Per-layer latency tables measured on the target backend (ONNX Runtime CPU here), summed to predict a network.

Each distinct block (type, channels, kernel, stride, expansion, skip, precision, input shape) is built with the
model's own block classes, BN-folded, quantized like the candidate, exported to its deployed Q/DQ ONNX graph and
timed in its own session. A session's fixed per-call overhead (measured on an identity graph) is subtracted from
every entry and added once per network. Tables are JSON files keyed by the block signature, so they are built once
per machine and shared by every search (the classification task validates its predictions on whole networks).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper
from torch import nn

from diffusiondrive_ros.model.encoders import Encoder

from ..quant.export import export_qdq_onnx
from ..quant.fake import assign_precisions, calibrate, fold_batchnorm
from ..quant.policy import encoder_rules
from ..space.genome import EncoderGenome

OVERHEAD_KEY = "__session_overhead__"


@dataclass(frozen=True)
class TimingConfig:
    threads: int = 1
    warmup: int = 5
    repeats: int = 30
    provider: str = "CPUExecutionProvider"


def _session(model_bytes: bytes, cfg: TimingConfig):  # noqa: ANN202
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = cfg.threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, opts, providers=[cfg.provider])


def time_onnx(model: onnx.ModelProto | str | Path, feeds: dict[str, np.ndarray], cfg: TimingConfig) -> float:
    """Median wall time of one ``run`` in milliseconds."""
    data = Path(model).read_bytes() if isinstance(model, (str, Path)) else model.SerializeToString()
    return _median_run_ms(_session(data, cfg), feeds, cfg)


def _median_run_ms(sess, feeds: dict[str, np.ndarray], cfg: TimingConfig) -> float:  # noqa: ANN001 - an ORT session
    """``cfg.warmup`` untimed runs, then the median of ``cfg.repeats`` timed ones, in milliseconds."""
    for _ in range(cfg.warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(cfg.repeats):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def session_overhead_ms(shape: tuple[int, ...], cfg: TimingConfig) -> float:
    """Time of an Identity graph: the fixed cost of one ``run`` call."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    return time_onnx(model, {"x": np.zeros(shape, np.float32)}, cfg)


@dataclass
class LayerUnit:
    """One measurable piece of a network: a signature, the module and its input shape."""

    key: str
    module: nn.Module
    input_shape: tuple[int, ...]


class _Stem(nn.Sequential):
    pass


def _block_signature(block: nn.Module, x_shape: tuple[int, ...], bits: int) -> str:
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    desc = {
        "type": type(block).__name__,
        "input": list(x_shape),
        "convs": [[m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.groups] for m in convs],
        "skip": bool(getattr(block, "has_skip", False)),
        "bits": bits,
    }
    return json.dumps(desc, sort_keys=True, separators=(",", ":"))


def encoder_units(enc: EncoderGenome, input_hw: tuple[int, int], seed: int = 0) -> list[LayerUnit]:
    """The stem and every block of the encoder, BN-folded and quantized per the genome, with their input shapes."""
    torch.manual_seed(seed)
    encoder = Encoder(enc.to_spec()).eval()
    fold_batchnorm(encoder)
    assign_precisions(encoder, [(p.removeprefix("x."), k, b) for p, k, b in encoder_rules("x", enc)])
    units = []
    x = torch.zeros(1, enc.in_channels, *input_hw)
    stem = _Stem(encoder.conv1, encoder.bn1, encoder.act1, encoder.maxpool)
    units.append(LayerUnit(_block_signature(stem, tuple(x.shape), enc.stem_bits) + "|stem", stem, tuple(x.shape)))
    with torch.no_grad():
        x = stem(x)
        for i, stage in enumerate(encoder.stages):
            for block in stage:
                units.append(
                    LayerUnit(_block_signature(block, tuple(x.shape), enc.stages[i].bits), block, tuple(x.shape))
                )
                x = block(x)
    return units


def measure_unit(unit: LayerUnit, cfg: TimingConfig, overhead_ms: float) -> float:
    """Latency (ms) of one unit in its deployed form, minus the session overhead (never below 0)."""
    gen = torch.Generator().manual_seed(0)
    calib = [torch.randn(unit.input_shape, generator=gen).abs() for _ in range(2)]
    calibrate(unit.module, calib)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "unit.onnx"
        export_qdq_onnx(unit.module, (calib[0],), path, ["x"], ["y"])
        ms = time_onnx(path, {"x": calib[0].numpy()}, cfg)
    return max(0.0, ms - overhead_ms)


@dataclass
class LatencyTable:
    """{signature: ms} plus the session overhead; persisted as JSON (written atomically)."""

    entries: dict[str, float] = field(default_factory=dict)
    timing: TimingConfig = field(default_factory=TimingConfig)
    path: Path | None = None

    @classmethod
    def load(cls, path: str | Path | None, timing: TimingConfig | None = None) -> LatencyTable:
        table = cls(timing=timing or TimingConfig(), path=Path(path) if path else None)
        if table.path and table.path.is_file():
            table.entries = json.loads(table.path.read_text())
        return table

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.entries, indent=0, sort_keys=True))
        tmp.replace(self.path)

    def overhead(self, shape: tuple[int, ...]) -> float:
        if OVERHEAD_KEY not in self.entries:
            self.entries[OVERHEAD_KEY] = session_overhead_ms(shape, self.timing)
        return self.entries[OVERHEAD_KEY]

    def lookup(
        self, units: list[LayerUnit], measure_missing: bool = True, progress: Callable[[int], None] | None = None
    ) -> list[float]:
        """Per-unit latencies (ms), measuring and recording the missing ones."""
        out = []
        overhead = self.overhead(units[0].input_shape)
        for u in units:
            if u.key not in self.entries:
                if not measure_missing:
                    raise KeyError(f"latency table has no entry for {u.key}")
                self.entries[u.key] = measure_unit(u, self.timing, overhead)
                if progress:
                    progress(1)
            out.append(self.entries[u.key])
        return out

    def predict(self, units: list[LayerUnit], measure_missing: bool = True) -> float:
        """Predicted end-to-end latency (ms): the sum of the units plus one session overhead."""
        return float(sum(self.lookup(units, measure_missing)) + self.entries[OVERHEAD_KEY])


def interleaved_latency(
    models: dict[str, str | Path], feeds: dict[str, np.ndarray], cfg: TimingConfig, rounds: int = 10
) -> dict[str, float]:
    """Median latency (ms) of each ONNX graph, timed in rotating order round after round.

    Timing A then B lets a load change on a shared machine favour one of them; interleaving ``rounds`` short
    bursts (``cfg.repeats`` runs each, after ``cfg.warmup``) spreads any drift over all graphs alike.
    """
    if rounds < 1 or not models:
        raise ValueError("need at least one graph and one round")
    sessions = {name: _session(Path(p).read_bytes(), cfg) for name, p in models.items()}
    names = list(sessions)
    per_round: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            per_round[name].append(_median_run_ms(sessions[name], feeds, cfg))
    return {n: float(np.median(v)) for n, v in per_round.items()}


def module_latency_ms(module: nn.Module, x: torch.Tensor, cfg: TimingConfig) -> float:
    """Latency (ms) of one float module on input ``x`` in ONNX Runtime (a copy is exported; the module is untouched)."""
    import copy
    import warnings

    m = copy.deepcopy(module).eval()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "module.onnx"
        torch.onnx.export(m, (x,), str(path), input_names=["x"], output_names=["y"], opset_version=18, dynamo=False)
        return time_onnx(path, {"x": x.numpy()}, cfg)
