"""Deploy a searched genome inside the planner: (fine-tune,) quantize, export the Q/DQ planner ONNX, write a model dir.

The model directory holds ``planner.onnx`` (Q/DQ where the genome says INT8), ``model.safetensors`` (float
weights + the genome's config), ``model.yaml`` (the config the node loads), ``genome.json`` and ``README.md``
(a model card with deployed sizes and the fake-quant vs ONNX Runtime parity). DSO-NAS and EGS results deploy through
their nearest genome (``best.json`` of their search).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import onnx
import torch

from diffusiondrive_ros.model import build_model, load_config
from diffusiondrive_ros.model.checkpoint import load_checkpoint, save_checkpoint
from diffusiondrive_ros.model.config import ModelConfig, save_config
from diffusiondrive_ros.runtime.export import check_parity, export_onnx, output_names
from diffusiondrive_ros.runtime.model_dir import CHECKPOINT_NAME, CONFIG_NAME, ONNX_NAME
from diffusiondrive_ros.train.step import train_steps

from .quant.export import DeployReport, finish_qdq, predicted_weight_bytes
from .quant.fake import assign_precisions, calibrate, fold_batchnorm, set_quant_enabled
from .quant.onnx_qdq import count_qdq, deployed_weight_bytes
from .quant.policy import planner_rules
from .space.genome import PRECISION_NAMES, Genome
from .space.planner import planner_config

GENOME_NAME = "genome.json"


def finetune_planner(
    model: torch.nn.Module, data_dir: str | Path, steps: int, lr: float = 1e-4, batch_size: int = 4, seed: int = 0
) -> int:
    """Short fine-tune of the whole planner on a ``data generate`` folder (float weights, before quantization)."""
    from torch.utils.data import DataLoader

    from diffusiondrive_ros.data.dataset import DrivingDataset, collate

    dataset = DrivingDataset(data_dir, split="train", config=model.config)
    gen = torch.Generator().manual_seed(seed)  # the sample order and the diffusion noise
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collate, generator=gen)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)

    def epoch():  # noqa: ANN202 - the tensors of each batch, in a new order per epoch
        return ({k: v for k, v in batch.items() if isinstance(v, torch.Tensor)} for batch in loader)

    return len(train_steps(model, epoch, steps, opt, gen))


def calibration_inputs(model: torch.nn.Module, n: int, data_dir: str | Path | None) -> list[tuple]:
    """Calibration batches: real samples when a data folder is given, otherwise the model's example inputs."""
    if data_dir is None:
        return [model.example_inputs(1, seed=100 + i) for i in range(n)]
    from diffusiondrive_ros.data.dataset import DrivingDataset

    ds = DrivingDataset(data_dir, split="train", config=model.config)
    out = []
    for i in range(min(n, len(ds))):
        item = ds[i]
        noise = model.example_inputs(1, seed=100 + i)[3]
        out.append((item["camera"][None], item["lidar"][None], item["status"][None], noise))
    return out


def deploy_genome(
    genome: Genome,
    base_config: str | ModelConfig,
    out_dir: str | Path,
    checkpoint: str | Path | None = None,
    data_dir: str | Path | None = None,
    train_steps: int = 0,
    calib_batches: int = 4,
    seed: int = 0,
    parity_tolerance: float = 0.05,
) -> DeployReport:
    """Build the planner with the genome's encoders, fine-tune, quantize, export and verify; returns the report.

    ``checkpoint``: start from these weights (its config's encoders must equal the genome's). Parity compares the
    fake-quant PyTorch planner with ONNX Runtime running the Q/DQ graph (metres for trajectories).
    """
    base = load_config(base_config) if isinstance(base_config, str) else base_config
    cfg = planner_config(genome, base)
    if checkpoint:
        model, ckpt_cfg = load_checkpoint(checkpoint)
        if ckpt_cfg.backbone != cfg.backbone:
            raise ValueError(f"checkpoint {checkpoint} was trained with other encoders than the genome's")
    else:
        model = build_model(cfg, seed=seed)
    steps = finetune_planner(model, data_dir, train_steps, seed=seed) if data_dir and train_steps > 0 else 0
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    save_checkpoint(model, out / CHECKPOINT_NAME, extra={"genome": genome.to_json(), "train_steps": steps})
    save_config(cfg, out / CONFIG_NAME)
    genome.save(out / GENOME_NAME)

    fold_batchnorm(model)
    assign_precisions(model, planner_rules(genome))
    calibrate(model, calibration_inputs(model, calib_batches, data_dir), forward=lambda b: model(*b))
    set_quant_enabled(model, False)
    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "float.onnx"
        float_report = export_onnx(model, cfg, float_path)  # checks the float graph against float PyTorch
        set_quant_enabled(model, True)
        graph = finish_qdq(model, onnx.load(str(float_path)), out / ONNX_NAME)
    diffs = check_parity(model, out / ONNX_NAME, output_names(model, False), aux=False)
    if max(diffs.values()) > parity_tolerance:
        raise RuntimeError(f"Q/DQ planner differs from the fake-quant model by {diffs} (> {parity_tolerance})")
    report = DeployReport(
        onnx_path=str(out / ONNX_NAME),
        params=sum(p.numel() for p in model.parameters()),
        deployed_bytes=deployed_weight_bytes(graph),
        predicted_bytes=predicted_weight_bytes(model),
        parity_max_abs=diffs,
        qdq_nodes=count_qdq(graph),
        model_dir=str(out),
        float_onnx_bytes=float_report.size_bytes,
        train_steps=steps,
    )
    write_card(report, genome, cfg)
    return report


def write_card(report: DeployReport, genome: Genome, cfg: ModelConfig) -> None:
    precisions = {f"{name}.stem": PRECISION_NAMES[e.stem_bits] for name, e in genome.encoders()}
    for name, e in genome.encoders():
        precisions.update({f"{name}.stage{i + 1}": PRECISION_NAMES[s.bits] for i, s in enumerate(e.stages)})
    precisions["fusion Linears"] = PRECISION_NAMES[genome.linear_bits]
    lines = [
        f"# Planner model `{genome.hash}` (base config `{cfg.name}`)",
        "",
        "Load it in the planner node with `model_path:=<this dir>` (and `backend:=onnxruntime`).",
        "",
        f"- deployed weights: {report.deployed_bytes} bytes (float32 export: {report.float_onnx_bytes} bytes file)",
        f"- Q/DQ nodes: {report.qdq_nodes}",
        f"- fake-quant PyTorch vs ONNX Runtime CPU, max abs diff: {json.dumps(report.parity_max_abs)}",
        f"- fine-tune steps: {report.train_steps}",
        "",
        "| layer group | precision |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in precisions.items()],
        "",
        "Everything outside the encoders and fusion Linears runs in float32.",
    ]
    (Path(report.model_dir) / "README.md").write_text("\n".join(lines) + "\n")
