"""EGS: the ensemble Gumbel-Softmax code, real temperature annealing, M connections per node, deployed result."""

from __future__ import annotations

import pytest
import torch

from nas_compression.evaluate.classify import load_dataset
from nas_compression.search.egs import EGSConfig, run_egs, temperature
from nas_compression.search.tasks import classify_template
from nas_compression.space.genome import check_deployable
from nas_compression.supernet.deploy import deploy_network
from nas_compression.supernet.egs_net import EGSArch, EGSNet, candidate_pairs, derive, ensemble_gumbel_weights
from nas_compression.supernet.genome_map import nearest_genome

torch.set_num_threads(1)


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


def test_temperature_really_anneals():
    taus = [temperature(s, 50, 5.0, 1.0) for s in range(50)]
    assert taus[0] == 5.0 and taus[-1] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(taus, taus[1:]))


def test_derived_cell_respects_m():
    for m in (1, 2, 3):
        net = EGSNet(EGSArch(1, 8, 4, 3, 1, m), seed=m)
        arch = derive(net)
        assert [len(node) for node in arch.cell] == [min(m, len(candidate_pairs(i))) for i in range(3)]
        for i, node in enumerate(arch.cell):
            assert set(node) <= set(candidate_pairs(i))


def test_egs_searches_in_one_backward_pass_and_deploys(tmp_path):
    data = load_dataset("digits")
    res = run_egs(data, EGSConfig(search_epochs=2.0, retrain_epochs=1.5, m=2), progress=False)
    taus = [h["tau"] for h in res.history]
    assert taus[0] == 5.0 and taus[-1] == pytest.approx(1.0)
    assert all(len(node) == 2 for node in res.arch.cell)
    assert res.accuracy > 0.3
    report = deploy_network(res.model, data, tmp_path / "egs.onnx")
    assert report.onnx_accuracy == pytest.approx(report.accuracy, abs=0.01)
    assert report.ort_max_abs_logit_diff < 1e-2
    check_deployable(nearest_genome(res.arch, classify_template("digits")))
    assert EGSArch.from_dict(res.arch.to_dict()) == res.arch
