"""Fake quantization that matches what is deployed: the same rounding the Q/DQ ONNX graph performs.

* INT8: symmetric per-output-channel weights in [-127, 127], symmetric per-tensor activations in [-128, 127] at the
  layer input (scale from calibration), zero points 0 - the TensorRT explicit-quantization convention.
* INT4 (Linear only): symmetric per-output-channel weights in [-7, 7], weight-only (activations stay float).
* FP16: weights rounded to float16 (activations stay float32 on ONNX Runtime CPU).

Gradients pass straight through the rounding (STE), so a short QAT fine-tune works on the same modules.
BatchNorm is folded into the convolutions first: deployment quantizes the folded weights.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

WEIGHT_QMAX = {8: 127, 4: 7}
ACT_QMIN, ACT_QMAX = -128, 127
MIN_SCALE = 1e-8


def weight_scale(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel symmetric scale (shape (out,)): max |w| / qmax."""
    amax = weight.detach().abs().flatten(1).amax(dim=1)
    return (amax / WEIGHT_QMAX[bits]).clamp_min(MIN_SCALE)


def quantize_weight(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer weights (as int8 tensor) and their per-channel scales - what the ONNX initializers hold."""
    scale = weight_scale(weight, bits)
    view = (-1,) + (1,) * (weight.dim() - 1)
    q = torch.clamp(torch.round(weight.detach() / scale.view(view)), -WEIGHT_QMAX[bits], WEIGHT_QMAX[bits])
    return q.to(torch.int8), scale


def fake_quant_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    if bits == 32:
        return weight
    if bits == 16:
        return weight + (weight.detach().half().float() - weight.detach())
    q, scale = quantize_weight(weight, bits)
    deq = q.float() * scale.view((-1,) + (1,) * (weight.dim() - 1))
    return weight + (deq - weight).detach()


def fake_quant_activation(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    deq = torch.clamp(torch.round(x.detach() / scale), ACT_QMIN, ACT_QMAX) * scale
    return x + (deq - x).detach()


class _QuantMixin:
    """Shared state of quantized layers: bits, calibration observer, activation scale, enable switch."""

    bits: int
    act_scale: torch.Tensor

    def _init_quant(self, bits: int) -> None:
        self.bits = bits
        self.enabled = True
        self.calibrating = False
        self.register_buffer("act_scale", torch.ones(()))  # type: ignore[attr-defined]
        self.register_buffer("act_amax", torch.zeros(()))  # type: ignore[attr-defined]

    @property
    def quantizes_input(self) -> bool:
        return self.bits == 8

    def _quant_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating and self.quantizes_input:
            self.act_amax = torch.maximum(self.act_amax, x.detach().abs().max())
        if self.enabled and self.quantizes_input and not self.calibrating:
            return fake_quant_activation(x, self.act_scale)
        return x

    def _quant_weight(self, w: torch.Tensor) -> torch.Tensor:
        return fake_quant_weight(w, self.bits) if self.enabled else w


class QuantConv2d(_QuantMixin, nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self._quant_weight(self.weight)
        return F.conv2d(self._quant_input(x), w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class QuantLinear(_QuantMixin, nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self._quant_input(x), self._quant_weight(self.weight), self.bias)


QUANT_LAYERS = (QuantConv2d, QuantLinear)


def _swap(parent: nn.Module, name: str, old: nn.Module, bits: int) -> nn.Module:
    if isinstance(old, nn.Conv2d):
        new = QuantConv2d(
            old.in_channels,
            old.out_channels,
            old.kernel_size,
            old.stride,
            old.padding,
            old.dilation,
            old.groups,
            bias=old.bias is not None,
        )
    else:
        new = QuantLinear(old.in_features, old.out_features, bias=old.bias is not None)
    new.weight = old.weight
    new.bias = old.bias
    new._init_quant(bits)
    new.train(old.training)
    setattr(parent, name, new)
    return new


def assign_precisions(model: nn.Module, rules: Iterable[tuple[str, type[nn.Module], int]]) -> dict[str, int]:
    """Swap Conv2d/Linear layers for quantized ones: rule (name prefix, layer type, bits); first match wins.

    Layers matched by no rule stay float32. Returns {layer name: bits}. Call after :func:`fold_batchnorm`.
    """
    rules = list(rules)
    assigned: dict[str, int] = {}
    for name, module in list(model.named_modules()):
        if type(module) not in (nn.Conv2d, nn.Linear):
            continue
        for prefix, kind, bits in rules:
            if (name == prefix or name.startswith(prefix + ".") or prefix == "") and isinstance(module, kind):
                if bits == 32:
                    break
                parent_name, _, attr = name.rpartition(".")
                _swap(model.get_submodule(parent_name) if parent_name else model, attr, module, bits)
                assigned[name] = bits
                break
    return assigned


def quant_layers(model: nn.Module) -> dict[str, _QuantMixin]:
    return {n: m for n, m in model.named_modules() if isinstance(m, QUANT_LAYERS)}


def set_quant_enabled(model: nn.Module, enabled: bool) -> None:
    for m in quant_layers(model).values():
        m.enabled = enabled


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable, forward=None) -> None:  # noqa: ANN001
    """Set every INT8 layer's activation scale to max |input| / 127 over the calibration batches."""
    layers = quant_layers(model).values()
    for m in layers:
        m.calibrating = True
        m.act_amax.zero_()
    model.eval()
    n = 0
    for batch in batches:
        (forward or model)(batch)
        n += 1
    if n == 0:
        raise ValueError("calibration needs at least one batch")
    for m in layers:
        m.calibrating = False
        if m.quantizes_input:
            m.act_scale.copy_((m.act_amax / ACT_QMAX).clamp_min(MIN_SCALE))


# -- BatchNorm folding -------------------------------------------------------------------------------------------
_CONV_BN_PAIRS = {
    "Encoder": (("conv1", "bn1"),),
    "BasicBlock": (("conv1", "bn1"), ("conv2", "bn2")),
    "Bottleneck": (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
    "MBConv": (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")),
    "SepConv": (("conv_dw", "bn1"), ("conv_pw", "bn2")),
    "_Downsample": (("0", "1"),),
    "ConvBN": (("0", "1"),),  # space.cells.ops: the cell networks' convolutions
}


@torch.no_grad()
def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight.mul_(factor.view(-1, 1, 1, 1))
    conv.bias = nn.Parameter(bn.bias + (bias - bn.running_mean) * factor)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every encoder and cell BatchNorm into its convolution (in place; BN becomes Identity). Returns the count."""
    count = 0
    for module in list(model.modules()):
        for conv_name, bn_name in _CONV_BN_PAIRS.get(type(module).__name__, ()):
            bn = getattr(module, bn_name, None)
            if isinstance(bn, nn.BatchNorm2d):
                _fold(getattr(module, conv_name), bn)
                setattr(module, bn_name, nn.Identity())
                count += 1
    return count
