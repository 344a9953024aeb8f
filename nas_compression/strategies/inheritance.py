"""Weight inheritance of the evolutionary searches (JASQ, EAT-NAS): a child starts from its parent's trained weights
wherever names and shapes match, and leaves its own trained float weights for its children."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..tasks.base import EvaluateFn, Job


def inherit_weights(model: nn.Module, parent_state: dict[str, torch.Tensor] | None) -> int:
    """Copy every parent tensor whose name and shape match into ``model``. Returns the count."""
    if not parent_state:
        return 0
    own = model.state_dict()
    shared = {k: v for k, v in parent_state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(shared, strict=False)
    return len(shared)


@dataclass(frozen=True)
class ParentWeights:
    """The inheritance of one evaluation: ``parent`` weights to start from (a safetensors file; none if absent) and
    ``out``, where the trained float weights go."""

    parent: str | None = None
    out: str | None = None

    def inherit(self, model: nn.Module) -> int:
        if not self.parent or not Path(self.parent).is_file():
            return 0
        return inherit_weights(model, load_file(self.parent))

    def keep(self, float_state: dict[str, torch.Tensor]) -> None:
        if self.out:
            Path(self.out).parent.mkdir(parents=True, exist_ok=True)
            save_file({k: v.contiguous() for k, v in float_state.items()}, self.out)


def evaluate_inheriting(evaluate: EvaluateFn, job: Job) -> dict:
    """A task's evaluation with the inheritance its job names (``parent_weights``, ``weights_out``).

    Module level, so ``functools.partial(evaluate_inheriting, task.evaluate_fn)`` pickles into evaluator workers."""
    return evaluate(job, ParentWeights(job.get("parent_weights"), job.get("weights_out")))
