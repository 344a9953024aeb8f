"""Training pieces: the losses and a CPU training step that lowers the loss on a synthetic batch."""

from __future__ import annotations

import torch

from diffusiondrive_ros.contract import NUM_AGENTS, NUM_BEV_CLASSES, NUM_POSES
from diffusiondrive_ros.model import build_model
from diffusiondrive_ros.model.config import LossConfig
from diffusiondrive_ros.model.losses import agent_loss, positive_modes, sigmoid_focal_loss
from diffusiondrive_ros.train.step import train_step


def synthetic_batch(model, batch_size: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    camera, lidar, status, _ = model.example_inputs(batch_size, seed)
    anchors = model.trajectory_head.plan_anchor
    pick = torch.randint(0, anchors.shape[0], (batch_size,), generator=g)
    xy = anchors[pick] + 0.3 * torch.randn(batch_size, NUM_POSES, 2, generator=g)
    heading = torch.atan(torch.diff(xy[..., 1], prepend=torch.zeros(batch_size, 1)))[..., None]
    n_real = 5
    agent_states = torch.zeros(batch_size, NUM_AGENTS, 5)
    agent_states[:, :n_real, :2] = torch.rand(batch_size, n_real, 2, generator=g) * 40 - 20
    agent_states[:, :n_real, 3:] = torch.tensor([4.5, 1.9])
    agent_labels = torch.zeros(batch_size, NUM_AGENTS)
    agent_labels[:, :n_real] = 1
    h, w = cfg.aux_heads.bev_semantic_size
    bev = torch.randint(0, NUM_BEV_CLASSES, (batch_size, h, w), generator=g)
    return {
        "camera": camera,
        "lidar": lidar,
        "status": status,
        "trajectory": torch.cat([xy, heading], -1),
        "agent_states": agent_states,
        "agent_labels": agent_labels,
        "bev_semantic_map": bev,
    }


def test_focal_loss_matches_a_hand_computed_value() -> None:
    logits, target = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])
    # p = 0.5 for the positive: 0.25 * 0.5^2 * ln 2; p = sigmoid(2) for the negative: 0.75 * p^2 * -ln(1 - p).
    p = torch.sigmoid(torch.tensor(2.0))
    expected = (0.25 * 0.25 * torch.log(torch.tensor(2.0)) + 0.75 * p**2 * -torch.log(1 - p)) / 2
    torch.testing.assert_close(sigmoid_focal_loss(logits, target, 2.0, 0.25), expected)


def test_positive_mode_is_the_nearest_anchor() -> None:
    anchors = torch.stack([torch.zeros(8, 2), torch.ones(8, 2) * 10])
    target = torch.ones(1, 8, 3) * 9
    assert positive_modes(target, anchors).tolist() == [1]


def test_hungarian_agent_loss_is_zero_for_a_perfect_permuted_prediction() -> None:
    gt = torch.zeros(1, 4, 5)
    gt[0, :2] = torch.tensor([[5.0, 1.0, 0.1, 4.5, 1.9], [-3.0, 2.0, 0.0, 4.0, 1.8]])
    valid = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    pred = gt[:, [1, 0, 2, 3]].clone()  # same boxes, other slots
    logits = torch.tensor([[20.0, 20.0, -20.0, -20.0]])
    ce, l1 = agent_loss(pred, logits, gt, valid, LossConfig())
    assert float(l1) < 1e-6 and float(ce) < 1e-6


def test_training_step_lowers_the_loss_on_cpu(tiny_config) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config, seed=0)
    batch = synthetic_batch(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    losses = [train_step(model, batch, opt, g)["loss"] for _ in range(12)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert min(losses[-3:]) < 0.7 * losses[0], losses
