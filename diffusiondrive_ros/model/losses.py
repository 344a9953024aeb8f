"""Training losses: focal classification of the positive mode + L1 on it per cascade layer, agents, BEV semantics.

Batch targets (keys of a training batch): ``trajectory`` (B,8,3), ``agent_states`` (B,30,5), ``agent_labels`` (B,30)
(1 = a real agent), ``bev_semantic_map`` (B,H,W) class indices.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from .config import LossConfig


def _scalar(t: torch.Tensor) -> float:
    """A loss value for logging (detached: converting a graph tensor to float warns)."""
    return float(t.detach())


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float, alpha: float) -> torch.Tensor:
    """Mean sigmoid focal loss (RetinaNet form) over all elements."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * (1 - p_t) ** gamma * ce).mean()


def positive_modes(target: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Index of the anchor with the smallest mean L2 distance to the ground-truth (x, y): (B,)."""
    dist = torch.linalg.norm(target[:, None, :, :2] - anchors[None], dim=-1).mean(dim=-1)
    return dist.argmin(dim=-1)


def trajectory_loss(
    layers: list[tuple[torch.Tensor, torch.Tensor]], target: torch.Tensor, anchors: torch.Tensor, cfg: LossConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum over cascade layers of cls_weight * focal(scores) + reg_weight * L1(positive mode, target)."""
    positive = positive_modes(target, anchors)
    total = target.new_zeros(())
    logs = {}
    for i, (poses, logits) in enumerate(layers):
        onehot = F.one_hot(positive, logits.shape[1]).to(logits.dtype)
        cls = cfg.cls_weight * sigmoid_focal_loss(logits, onehot, cfg.focal_gamma, cfg.focal_alpha)
        chosen = poses[torch.arange(poses.shape[0], device=poses.device), positive]
        reg = cfg.reg_weight * F.l1_loss(chosen, target)
        total = total + cls + reg
        logs[f"traj_cls_{i}"], logs[f"traj_reg_{i}"] = _scalar(cls), _scalar(reg)
    return total, logs


def hungarian_match(cost: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per batch element, (prediction indices, target indices) minimising ``cost`` (B, P, T)."""
    return [linear_sum_assignment(c) for c in cost.detach().cpu().numpy()]


def agent_loss(
    pred_states: torch.Tensor,
    pred_logits: torch.Tensor,
    gt_states: torch.Tensor,
    gt_valid: torch.Tensor,
    cfg: LossConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hungarian-matched BCE on presence and L1 on the states of matched real agents (DETR-style)."""
    gt_valid = gt_valid.to(pred_logits.dtype)
    b, p = pred_logits.shape
    # cost[b, i, j]: BCE of prediction i against target j's label + L1 of xy when target j is a real agent.
    ce_cost = F.binary_cross_entropy_with_logits(
        pred_logits[:, :, None].expand(-1, -1, gt_valid.shape[1]),
        gt_valid[:, None, :].expand(-1, p, -1),
        reduction="none",
    )
    l1_cost = (pred_states[:, :, None, :2] - gt_states[:, None, :, :2]).abs().sum(-1) * gt_valid[:, None, :]
    matches = hungarian_match(cfg.agent_class_weight * ce_cost + cfg.agent_box_weight * l1_cost)
    batch_idx = torch.cat([torch.full((len(i),), k, dtype=torch.long) for k, (i, _) in enumerate(matches)])
    pred_idx = torch.cat([torch.as_tensor(i, dtype=torch.long) for i, _ in matches])
    gt_idx = torch.cat([torch.as_tensor(j, dtype=torch.long) for _, j in matches])
    valid = gt_valid[batch_idx, gt_idx]
    n_gt = valid.sum().clamp(min=1.0)
    l1 = ((pred_states[batch_idx, pred_idx] - gt_states[batch_idx, gt_idx]).abs().sum(-1) * valid).sum() / n_gt
    ce = F.binary_cross_entropy_with_logits(pred_logits[batch_idx, pred_idx], valid)
    return ce, l1


def total_loss(
    outputs: dict[str, object], batch: dict[str, torch.Tensor], anchors: torch.Tensor, cfg: LossConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the trajectory, agent and BEV-semantic losses; the aux terms only when both sides exist."""
    traj, logs = trajectory_loss(outputs["layers"], batch["trajectory"], anchors, cfg)  # type: ignore[arg-type]
    loss = cfg.trajectory_weight * traj
    logs["trajectory"] = _scalar(traj)
    if "agent_states" in outputs and "agent_states" in batch:
        ce, l1 = agent_loss(
            outputs["agent_states"],
            outputs["agent_labels"],
            batch["agent_states"],
            batch["agent_labels"],
            cfg,  # type: ignore[arg-type]
        )
        loss = loss + cfg.agent_class_weight * ce + cfg.agent_box_weight * l1
        logs["agent_class"], logs["agent_box"] = _scalar(ce), _scalar(l1)
    if "bev_semantic_map" in outputs and "bev_semantic_map" in batch:
        bev = F.cross_entropy(outputs["bev_semantic_map"], batch["bev_semantic_map"].long())  # type: ignore[arg-type]
        loss = loss + cfg.bev_semantic_weight * bev
        logs["bev_semantic"] = _scalar(bev)
    logs["loss"] = _scalar(loss)
    return loss, logs
