"""Cell search spaces: DSO-NAS pruning of isolated operations, the EGS ensemble code and derived cells, and both as
the planner's encoders (shapes, pruning that keeps the function, one Gumbel draw per forward)."""

from __future__ import annotations

import pytest
import torch

from diffusiondrive_ros.model import load_config
from diffusiondrive_ros.train.step import planner_loss
from nas_compression.space.cells.dso import INPUT, OUTPUT, BlockArch, lambda_modules, prune_block
from nas_compression.space.cells.egs import EGSArch, EGSNet, candidate_pairs, derive, ensemble_gumbel_weights
from nas_compression.space.cells.nearest_genome import nearest_planner_genome
from nas_compression.space.cells.planner import (
    DSOCellEncoder,
    EGSCellEncoder,
    complete_dso_arch,
    egs_space,
    encoder_templates,
    planner_with_encoders,
)
from nas_compression.space.planner import planner_config
from nas_compression.tasks.planner import load_split, planner_template


def _planner_inputs(model, batch: int = 2):
    return model.example_inputs(batch, seed=0)


def test_pruning_drops_zero_edges_and_isolated_operations():
    full = BlockArch.complete(2)  # ops 0..3 (level 0), 4..7 (level 1)
    keep = {e: True for e in full.edges()}
    for d in (4, 5, 6, 7):  # level-1 ops lose every input except op 0 (op 4) -> ops 5, 6, 7 isolated
        for s in full.ops[d]:
            keep[(d, s)] = d == 4 and s == 0
    for s in (0, 1, 2, 3):  # op 0 feeds op 4 only; ops 1..3 reach nothing -> isolated
        keep[(OUTPUT, s)] = False
    pruned = prune_block(full, keep)
    assert pruned.ops == {0: (INPUT,), 4: (0,)}
    assert pruned.outputs == (4,)


def test_ensemble_code_has_at_most_m_ones_and_passes_gradients():
    gen = torch.Generator().manual_seed(0)
    alpha = torch.zeros(10, requires_grad=True)
    for m in (1, 2, 4):
        w = ensemble_gumbel_weights(alpha, m, 1.0, gen)
        ones = int((w > 0).sum())
        assert 1 <= ones <= m
        assert float(w.detach().sum()) == pytest.approx(1.0)
        assert torch.allclose(w.detach()[w > 0], torch.full((ones,), 1.0 / ones))
    (ensemble_gumbel_weights(alpha, 2, 1.0, gen) * torch.arange(10.0)).sum().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0


def test_derived_cell_respects_m():
    for m in (1, 2, 3):
        net = EGSNet(EGSArch(1, 8, 4, 3, 1, m), seed=m)
        arch = derive(net)
        assert [len(node) for node in arch.cell] == [min(m, len(candidate_pairs(i))) for i in range(3)]
        for i, node in enumerate(arch.cell):
            assert set(node) <= set(candidate_pairs(i))


def test_dso_cell_encoders_run_inside_the_planner_and_pruning_keeps_the_function():
    cfg = load_config("tiny")
    torch.manual_seed(0)
    encs = {n: DSOCellEncoder(t, complete_dso_arch(t, size)) for n, (t, size) in encoder_templates(cfg).items()}
    model = planner_with_encoders(cfg, encs, seed=0).eval()
    image = encs["image"]
    # every stage keeps the base config's widths and strides (the fusion transformers are built for them)
    feats = image(torch.rand(1, 3, cfg.camera.height, cfg.camera.width))
    assert [f.shape[1] for f in feats] == list(cfg.backbone.image_encoder.stage_channels)
    assert [type(s[0]).__name__ for s in image.stages] == [
        "Identity",
        "ReductionBlock",
        "ReductionBlock",
        "ReductionBlock",
    ]
    # zero some lambdas: the pruned, rebuilt encoder computes the same planner output with fewer edges
    with torch.no_grad():
        for m in lambda_modules(image)[::2]:
            m.lam[: max(1, len(m.lam) // 2)] = 0.0
        m = image.stages[1][0]  # a reduction keeps at least one branch
        m.lam[:] = 0.0
        before = model(*_planner_inputs(model))["trajectory"]
    arch = image.pruned_arch()
    assert arch.num_edges() < image.arch.num_edges() and len(arch.reductions[1]) == 1
    model.backbone.image_encoder = image.rebuilt(arch).eval()
    with torch.no_grad():
        after = model(*_planner_inputs(model))["trajectory"]
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)


def test_egs_cell_encoders_draw_one_code_per_forward_and_alpha_learns_from_the_planner_loss(planner_data):
    cfg = load_config("tiny")
    torch.manual_seed(0)
    encs = {n: EGSCellEncoder(t, egs_space(t, size), seed=1) for n, (t, size) in encoder_templates(cfg).items()}
    model = planner_with_encoders(cfg, encs, seed=0).train()
    batch = {k: v[:2] for k, v in load_split(str(planner_data), "train", 4, "tiny").items()}
    loss, _ = planner_loss(model, batch, torch.Generator().manual_seed(0))
    loss.backward()
    for enc in encs.values():
        codes = enc._box.codes
        assert len(codes) == enc.arch.nodes and all(1 <= int((c > 0).sum()) <= enc.arch.m for c in codes)
        assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in enc.alphas)
    archs = {n: derive(e) for n, e in encs.items()}
    assert all(len(node) == 2 for a in archs.values() for node in a.cell)
    genome = nearest_planner_genome(archs, planner_template("tiny"))
    planner_config(genome, cfg)  # deployable in the planner as is
    assert {s.block for _, e in genome.encoders() for s in e.stages} == {"sepconv"}
