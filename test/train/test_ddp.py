"""DDP on gloo with 2 CPU processes: one step's gradients and parameters equal a single process on the global batch.

Dropout is off and BatchNorm uses its running statistics (model.eval()), since per-rank batch statistics and dropout
masks legitimately differ from a single process; what is tested is the gradient all-reduce and the per-rank slicing
of the diffusion inputs and samples. Every sample has the same number of agents, so the agent-loss normalisation
(per rank) matches the global one.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from diffusiondrive_ros.contract import NUM_AGENTS, NUM_BEV_CLASSES, NUM_POSES
from diffusiondrive_ros.model import build_model, load_config
from diffusiondrive_ros.model.training import sample_diffusion_inputs
from diffusiondrive_ros.train.distributed import DistContext
from diffusiondrive_ros.train.trainer import TrainingForward, rank_slice, training_loss

WORLD = 2
GLOBAL_BATCH = 4


def global_batch(model) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    camera, lidar, status, _ = model.example_inputs(GLOBAL_BATCH, seed=5)
    xy = model.trajectory_head.plan_anchor[torch.arange(GLOBAL_BATCH)] + 0.3 * torch.randn(GLOBAL_BATCH, NUM_POSES, 2,
                                                                                            generator=g)
    agents = torch.zeros(GLOBAL_BATCH, NUM_AGENTS, 5)
    agents[:, :3, :2] = torch.rand(GLOBAL_BATCH, 3, 2, generator=g) * 40 - 20
    agents[:, :3, 3:] = torch.tensor([4.5, 1.9])
    labels = torch.zeros(GLOBAL_BATCH, NUM_AGENTS)
    labels[:, :3] = 1
    h, w = model.config.aux_heads.bev_semantic_size
    return {"camera": camera, "lidar": lidar, "status": status,
            "trajectory": torch.cat([xy, torch.zeros(GLOBAL_BATCH, NUM_POSES, 1)], -1),
            "agent_states": agents, "agent_labels": labels,
            "bev_semantic_map": torch.randint(0, NUM_BEV_CLASSES, (GLOBAL_BATCH, h, w), generator=g)}


def one_step(forward: nn.Module, model, batch, ctx: DistContext) -> None:
    """What Trainer.train_step does: global diffusion inputs, this rank's rows, loss, backward, an optimizer step.

    SGD rather than the trainer's AdamW: Adam's first step is about lr * sign(grad), which turns float noise on
    near-zero gradients into lr-sized differences; the gradients themselves are compared exactly (within tolerance).
    """
    model.eval()
    t, noise = sample_diffusion_inputs(model, GLOBAL_BATCH, torch.Generator().manual_seed(9))
    local = {k: rank_slice(v, ctx) for k, v in batch.items()}
    loss, _ = training_loss(forward, model, local, rank_slice(t, ctx), rank_slice(noise, ctx))
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()


def worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        model = build_model(load_config("tiny"), seed=0)
        ddp = nn.parallel.DistributedDataParallel(TrainingForward(model))
        one_step(ddp, model, global_batch(model), DistContext(rank, WORLD, rank))
        torch.save({"grads": {n: p.grad for n, p in model.named_parameters()}, "params": model.state_dict()},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_step_matches_a_single_process_on_the_global_batch(tmp_path) -> None:
    # fork: a spawned child would have to import this test module by name, which importlib mode does not provide
    mp.start_processes(worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True, start_method="fork")
    model = build_model(load_config("tiny"), seed=0)
    one_step(TrainingForward(model), model, global_batch(model), DistContext())
    assert all(p.grad is not None for p in model.parameters())  # every parameter is used: no unused-param search
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for name, p in model.named_parameters():
            torch.testing.assert_close(got["grads"][name], p.grad, rtol=1e-4, atol=1e-6, msg=name)
        for name, value in model.state_dict().items():
            torch.testing.assert_close(got["params"][name], value, rtol=1e-4, atol=1e-6, msg=name)
