"""``nas-compress compare``: all four methods on digits at a tiny budget, one table, one plot, deployable ONNX."""

from __future__ import annotations

import json
import math

import onnxruntime as ort
import pytest
import torch

from nas_compression.cli import main

torch.set_num_threads(1)


@pytest.mark.slow
def test_compare_cli_writes_table_plot_and_runnable_onnx(tmp_path):
    out = tmp_path / "cmp"
    rc = main(["compare", "--task", "digits", "--budget", "4", "--final-epochs", "1", "--out", str(out)])
    assert rc == 0
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["jasq", "dso", "egs", "eat"]
    table = (out / "compare.md").read_text()
    for r in rows:
        assert f"| {r['method']} |" in table
        d = r["deploy"]
        assert d["deployed_bytes"] > 0 and d["latency_ms"] > 0 and d["params"] > 0 and r["search_seconds"] > 0
        sess = ort.InferenceSession(d["onnx_path"], providers=["CPUExecutionProvider"])
        assert sess.run(None, {"image": torch.rand(1, 1, 8, 8).numpy()})[0].shape == (1, 10)
    assert (out / "compare.png").stat().st_size > 10_000


def test_compare_refuses_bad_settings():
    from nas_compression.search.compare import CompareConfig

    with pytest.raises(ValueError):
        CompareConfig(budget=2)
    with pytest.raises(ValueError):
        CompareConfig(methods=("darts",))


# -- the planner proxy task ----------------------------------------------------------------------------------------
SOURCE = "diffusiondrive_ros.data.synthetic:iter_synthetic_samples"
TINY_PLANNER = [
    "--train-steps", "2", "--batch-size", "4", "--train-samples", "16", "--val-samples", "8",
    "--latency-repeats", "2", "--rounds", "2",
]  # fmt: skip


@pytest.fixture(scope="module")
def planner_data(tmp_path_factory):
    from diffusiondrive_ros.data.generate import generate
    from diffusiondrive_ros.model import load_config

    out = tmp_path_factory.mktemp("compare_planner_data")
    generate(out, 10, 0, 0, load_config("tiny"), samples_per_scene=4, source=SOURCE, progress=False)
    return out


def _planner_inputs(model, batch: int = 2):
    return model.example_inputs(batch, seed=0)


def test_dso_cell_encoders_run_inside_the_planner_and_pruning_keeps_the_function():
    from diffusiondrive_ros.model import load_config
    from nas_compression.supernet.dso_net import lambda_modules
    from nas_compression.supernet.planner_cells import (
        DSOCellEncoder,
        complete_dso_arch,
        encoder_templates,
        planner_with_encoders,
        pruned_encoder_arch,
        rebuild_encoder,
    )

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
    arch = pruned_encoder_arch(image)
    assert arch.num_edges() < image.arch.num_edges() and len(arch.reductions[1]) == 1
    model.backbone.image_encoder = rebuild_encoder(image, arch).eval()
    with torch.no_grad():
        after = model(*_planner_inputs(model))["trajectory"]
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)


def test_egs_cell_encoders_draw_one_code_per_forward_and_alpha_learns_from_the_planner_loss(planner_data):
    from diffusiondrive_ros.model import load_config
    from diffusiondrive_ros.model.training import compute_loss
    from nas_compression.evaluate.planner import load_split
    from nas_compression.search.tasks import planner_template
    from nas_compression.space.planner import planner_config
    from nas_compression.supernet.egs_net import derive
    from nas_compression.supernet.genome_map import nearest_planner_genome
    from nas_compression.supernet.planner_cells import (
        EGSCellEncoder,
        egs_space,
        encoder_templates,
        planner_with_encoders,
    )

    cfg = load_config("tiny")
    torch.manual_seed(0)
    encs = {n: EGSCellEncoder(t, egs_space(t, size), seed=1) for n, (t, size) in encoder_templates(cfg).items()}
    model = planner_with_encoders(cfg, encs, seed=0).train()
    batch = {k: v[:2] for k, v in load_split(str(planner_data), "train", 4, "tiny").items()}
    loss, _ = compute_loss(model, batch, torch.Generator().manual_seed(0))
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


@pytest.mark.slow
def test_planner_supernet_searches_return_deployable_planner_genomes(planner_data):
    from nas_compression.evaluate.planner import PlannerBudget
    from nas_compression.search.planner_supernets import (
        PlannerDSOConfig,
        PlannerEGSConfig,
        run_planner_dso,
        run_planner_egs,
    )
    from nas_compression.search.tasks import PlannerTask

    budget = PlannerBudget(train_steps=2, batch_size=4, train_samples=16, val_samples=8)
    task = PlannerTask(str(planner_data), budget)
    dso = run_planner_dso(str(planner_data), budget, PlannerDSOConfig(steps=9, gamma=2.0, prune_every=1), False)
    assert dso.train_steps == 9 and dso.search_seconds > 0
    first, last = dso.history[0], dso.history[-1]
    assert last["nonzero_lambdas"] < first["nonzero_lambdas"]  # the L1 proximal steps zeroed edges
    assert sum(last["edges"].values()) < sum(first["edges"].values())  # and the rebuild dropped them
    egs = run_planner_egs(str(planner_data), budget, PlannerEGSConfig(steps=4), False)
    assert [h["tau"] for h in egs.history][0] == 5.0 and egs.history[-1]["tau"] == pytest.approx(1.0)
    for res in (dso, egs):
        task.validate(res.genome)
        assert set(res.archs) == {"image", "lidar"} and all(math.isfinite(h["loss"]) for h in res.history[1:])


def test_planner_compare_refuses_bad_settings(planner_data, tmp_path, capsys):
    from nas_compression.search.compare_on_planner import PlannerCompareConfig

    with pytest.raises(ValueError, match="evaluations"):
        PlannerCompareConfig(str(planner_data), evaluations=3)
    with pytest.raises(ValueError, match="unknown method"):
        PlannerCompareConfig(str(planner_data), methods=("darts",))
    assert main(["compare", "--task", "planner", "--out", str(tmp_path / "x")]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["compare", "--task", "planner", "--data", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "manifest.json" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(1200)  # ~3 min of CPU (13 planner ONNX exports); more wall time on a loaded machine
def test_planner_compare_cli_writes_four_methods_and_the_reference(planner_data, tmp_path):
    import numpy as np

    out = tmp_path / "cmp"
    argv = ["compare", "--task", "planner", "--data", str(planner_data), "--budget", "4", *TINY_PLANNER]
    assert main([*argv, "--out", str(out)]) == 0
    report = json.loads((out / "compare.json").read_text())
    rows = report["rows"]
    assert [r["method"] for r in rows] == ["tiny (hand-made)", "jasq", "dso", "egs", "eat"]
    assert report["config"]["evaluations"] == 4 and report["config"]["budget"]["train_steps"] == 2
    table = (out / "compare.md").read_text()
    for r in rows:
        assert f"| {r['method']} |" in table
        m = r["metrics"]
        for key in ("ade_4s", "min_ade", "mode_accuracy", "fde_4s", "float_ade_4s"):
            assert math.isfinite(m[key]), (r["method"], key)
        assert m["inherited_tensors"] == 0  # every final genome trained from scratch
        assert r["deployed_bytes"] > 0 and r["latency_ms"] > 0 and m["params"] > 0
        sess = ort.InferenceSession(r["onnx_path"], providers=["CPUExecutionProvider"])
        feeds = {
            i.name: np.random.default_rng(0).random([d or 1 for d in i.shape]).astype(np.float32)
            for i in sess.get_inputs()
        }
        traj = sess.run(None, feeds)[0]
        assert traj.shape == (1, 8, 3) and np.isfinite(traj).all()
    searched = {r["method"]: r for r in rows[1:]}
    assert searched["jasq"]["evaluations"] == 4 and searched["jasq"]["search_steps"] == 8
    assert searched["eat"]["evaluations"] == 4 and searched["eat"]["search_steps"] == 2 * 1 + 2 * 2
    assert searched["dso"]["search_steps"] == 8 and searched["egs"]["search_steps"] == 8
    assert all(searched[m]["search_seconds"] > 0 for m in searched)
    assert (out / "dso" / "arch.json").is_file() and (out / "egs" / "best.json").is_file()
    assert (out / "compare.png").stat().st_size > 10_000
