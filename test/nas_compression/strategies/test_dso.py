"""DSO-NAS: the APG-NAG step by hand, budget-aware gammas, sparse lambdas, and the deployed result."""

from __future__ import annotations

import onnx
import pytest
import torch

from nas_compression.space.cells.dso import DSOArch, DSONet
from nas_compression.space.cells.nearest_genome import nearest_genome
from nas_compression.space.genome import check_deployable
from nas_compression.strategies.dso import DSOConfig, apg_nag_step, block_gammas, run_dso, soft_threshold
from nas_compression.tasks.classify import ClassifyTask, classify_template, deploy_network


def test_soft_threshold():
    z = torch.tensor([-0.3, -0.05, 0.0, 0.05, 0.3])
    assert torch.allclose(soft_threshold(z, 0.1), torch.tensor([-0.2, 0.0, 0.0, 0.0, 0.2]))


def test_apg_nag_step_matches_hand_computed_values():
    lam = torch.tensor([1.0, 0.02, 0.5])
    grad = torch.tensor([0.5, 0.1, -1.0])
    v = torch.tensor([0.1, 0.0, -0.2])
    # lr 0.1, gamma 0.2 -> threshold 0.02; z = lam - 0.1 grad = [0.95, 0.01, 0.6]; S(z) = [0.93, 0, 0.58]
    # v' = S(z) - lam + 0.9 v = [0.93-1+0.09, 0-0.02+0, 0.58-0.5-0.18] = [0.02, -0.02, -0.1]
    # lam' = S(z) + 0.9 v' = [0.948, -0.018, 0.49]
    new, v_new = apg_nag_step(lam, grad, v, lr=0.1, gamma=0.2, momentum=0.9, nonnegative=False)
    assert torch.allclose(v_new, torch.tensor([0.02, -0.02, -0.1]), atol=1e-6)
    assert torch.allclose(new, torch.tensor([0.948, -0.018, 0.49]), atol=1e-6)
    clamped, _ = apg_nag_step(lam, grad, v, lr=0.1, gamma=0.2, momentum=0.9)
    assert torch.allclose(clamped, torch.tensor([0.948, 0.0, 0.49]), atol=1e-6)


def test_budget_aware_gamma_follows_flops_share():
    model = DSONet(DSOArch.complete(1, 8, 8, 2, 2))
    x = torch.rand(2, 1, 8, 8)
    flat = block_gammas(model, 0.1, "none", run=lambda: model(x[:1]))
    flops = block_gammas(model, 0.1, "flops", run=lambda: model(x[:1]))
    assert flat == [0.1] * 3
    assert sum(flops) == pytest.approx(0.3)
    # the first block (8 channels at 8x8) costs more than the reduction (1x1 + 3x3 stride 2)
    assert flops[0] > flops[1]


def test_dso_lambdas_become_sparse_pruning_shrinks_and_result_deploys(tmp_path):
    task = ClassifyTask("digits")
    data = task.data
    steps = {"pretrain_steps": task.epoch_steps(0.5), "search_steps": task.epoch_steps(3.0, half=True)}
    cfg = DSOConfig(**steps, retrain_steps=task.epoch_steps(1.5), gamma=0.2, prune_every=10)
    res = run_dso(task, cfg, progress=False)
    first, last = res.history[0], res.history[-1]
    assert last["edges"] < first["edges"] / 2  # lambdas went exactly to zero and their edges were removed
    assert last["params"] < first["params"] and last["ops"] < first["ops"]
    assert res.arch.num_edges() <= last["edges"]
    assert res.accuracy > 0.3  # retrained from scratch, well above chance (0.1)
    report = deploy_network(res.model, data, tmp_path / "dso.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "dso.onnx")))
    assert report.onnx_accuracy == pytest.approx(report.accuracy, abs=0.01)
    # int8 rounding ties may differ by one quantization step between fake-quant PyTorch and ONNX Runtime
    assert report.parity_max_abs["logits"] < 5e-2
    genome = nearest_genome(res.arch, classify_template("digits"))
    check_deployable(genome)
    assert all(s.block == "sepconv" for s in genome.image.stages)
    assert DSOArch.from_dict(res.arch.to_dict()) == res.arch
