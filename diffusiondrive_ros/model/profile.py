"""Parameter and FLOP counts per part of the network (``diffusiondrive info``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from .diffusiondrive import DiffusionDriveModel

# Parts reported, as (label, module attribute paths).
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("image encoder", ("backbone.image_encoder",)),
    ("lidar encoder", ("backbone.lidar_encoder",)),
    ("fusion GPTs", ("backbone.transformers", "backbone.lidar_channel_to_img", "backbone.img_channel_to_lidar")),
    ("BEV upscale", ("backbone.c5_conv", "backbone.up_conv5", "backbone.up_conv4")),
    ("neck", ("keyval_embedding", "query_embedding", "bev_downscale", "status_encoding", "bev_proj", "tf_decoder")),
    ("trajectory head", ("trajectory_head",)),
    ("agent head", ("agent_head",)),
    ("BEV semantic head", ("bev_semantic_head",)),
)


@dataclass
class PartProfile:
    name: str
    params: int
    gflops: float


def _module(model: torch.nn.Module, path: str) -> torch.nn.Module | None:
    mod: torch.nn.Module | None = model
    for part in path.split("."):
        mod = getattr(mod, part, None)
        if mod is None:
            return None
    return mod


class _FlopAttributor(TorchDispatchMode):
    """Counts matmul/conv FLOPs and charges each op to the innermost module executing at that moment.

    Module calls are tracked with global forward hooks, so a submodule called from a parent's helper method (the
    encoders' stem, the value convs computed once per frame) is still charged to itself, exactly once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.flops: dict[str, int] = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.flops[self.stack[-1] if self.stack else ""] += int(formula(*args, **kwargs, out_val=out))
        return out


def profile_model(model: DiffusionDriveModel, with_aux: bool = True) -> list[PartProfile]:
    """Params and forward GFLOPs (2 x multiply-accumulates of matmuls/convs) per part, batch 1, plus a total row."""
    model = model.eval()
    names = {mod: name for name, mod in model.named_modules()}
    counter = _FlopAttributor()

    def push(mod: torch.nn.Module, _inputs: object) -> None:
        counter.stack.append(names.get(mod, ""))

    def pop(mod: torch.nn.Module, _inputs: object, _output: object) -> None:
        counter.stack.pop()

    handles = [register_module_forward_pre_hook(push), register_module_forward_hook(pop)]
    try:
        with torch.no_grad(), counter:  # not inference_mode: composite ops must decompose to mm/conv
            model(*model.example_inputs(1), return_aux=with_aux)
    finally:
        for h in handles:
            h.remove()
    rows = []
    for label, paths in PARTS:
        params, flops = 0, 0
        for path in paths:
            mod = _module(model, path)
            if mod is None:
                continue
            params += sum(p.numel() for p in mod.parameters())
            flops += sum(f for k, f in counter.flops.items() if k == path or k.startswith(path + "."))
        rows.append(PartProfile(label, params, flops / 1e9))
    total = sum(counter.flops.values())
    rows.append(PartProfile("other", 0, (total - sum(r.gflops * 1e9 for r in rows)) / 1e9))
    rows.append(PartProfile("total", sum(p.numel() for p in model.parameters()), total / 1e9))
    return rows


def format_profile(rows: list[PartProfile], title: str) -> str:
    lines = [title, f"{'part':<20}{'params (M)':>12}{'GFLOP':>10}"]
    for r in rows:
        lines.append(f"{r.name:<20}{r.params / 1e6:>12.3f}{r.gflops:>10.3f}")
    return "\n".join(lines)
