"""The PyTorch DiffusionDrive network: shapes, size, determinism, schedule constants, value caching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusiondrive_ros.contract import AGENT_STATE_DIM, NUM_AGENTS, NUM_BEV_CLASSES, NUM_POSES
from diffusiondrive_ros.model import build_model, load_config
from diffusiondrive_ros.model.diffusion import TruncatedSchedule, alphas_cumprod, inference_timesteps
from diffusiondrive_ros.model.profile import profile_model

CONFIGS = ("tiny", "navsim")


@pytest.fixture(scope="module", params=CONFIGS)
def model(request: pytest.FixtureRequest) -> torch.nn.Module:
    torch.set_num_threads(2)
    return build_model(load_config(request.param), seed=0).eval()


def test_every_output_has_the_contract_shape(model: torch.nn.Module) -> None:
    cfg = model.config
    m = cfg.trajectory_head.num_anchors
    with torch.inference_mode():
        out = model(*model.example_inputs(2), return_aux=True)
    assert out["trajectory"].shape == (2, NUM_POSES, 3)
    assert out["modes"].shape == (2, m, NUM_POSES, 3)
    assert out["mode_scores"].shape == (2, m)
    assert out["agent_states"].shape == (2, NUM_AGENTS, AGENT_STATE_DIM)
    assert out["agent_labels"].shape == (2, NUM_AGENTS)
    assert out["bev_semantic_map"].shape == (2, NUM_BEV_CLASSES, *cfg.aux_heads.bev_semantic_size)
    for value in out.values():
        assert torch.isfinite(value).all()
    # The best trajectory is the highest-scoring mode, and scores are probabilities.
    best = out["mode_scores"].argmax(-1)
    assert torch.equal(out["trajectory"], out["modes"][torch.arange(2), best])
    assert ((out["mode_scores"] > 0) & (out["mode_scores"] < 1)).all()
    # Headings are tanh * pi.
    assert out["modes"][..., 2].abs().max() <= np.pi


def test_aux_outputs_only_when_asked(model: torch.nn.Module) -> None:
    with torch.inference_mode():
        out = model(*model.example_inputs(1))
    assert set(out) == {"trajectory", "modes", "mode_scores"}


def test_navsim_parameter_count_matches_the_paper() -> None:
    model = build_model(load_config("navsim"))
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - 60.7e6) / 60.7e6 < 0.005, n
    parts = {row.name: row.params for row in profile_model(model)}
    assert abs(parts["image encoder"] - 21.3e6) < 0.1e6
    assert abs(parts["lidar encoder"] - 21.3e6) < 0.1e6
    assert abs(parts["trajectory head"] - 5.0e6) < 0.1e6


def test_flops_per_part_add_up_and_tiny_is_under_a_gigaflop(tiny_config) -> None:
    rows = {r.name: r for r in profile_model(build_model(tiny_config))}
    assert rows["total"].gflops < 1.0
    assert rows["other"].gflops == pytest.approx(0.0, abs=1e-6)  # every FLOP is charged to a part
    assert sum(r.gflops for n, r in rows.items() if n != "total") == pytest.approx(rows["total"].gflops)


def test_forward_is_deterministic_given_epsilon(model: torch.nn.Module) -> None:
    camera, lidar, status, noise = model.example_inputs(1, seed=3)
    with torch.inference_mode():
        a = model(camera, lidar, status, noise)
        b = model(camera, lidar, status, noise.clone())
        c = model(camera, lidar, status, torch.randn_like(noise))
    for key in a:
        assert torch.equal(a[key], b[key])
    assert not torch.allclose(a["modes"], c["modes"])


def test_value_conv_cache_gives_the_uncached_result(model: torch.nn.Module) -> None:
    inputs = model.example_inputs(1, seed=5)
    with torch.inference_mode():
        cached = model(*inputs, cache_values=True)
        uncached = model(*inputs, cache_values=False)
    for key in cached:
        torch.testing.assert_close(cached[key], uncached[key], rtol=0, atol=1e-6)


def test_ddim_constants_match_the_reference_values() -> None:
    ac = alphas_cumprod(1000, 1e-4, 0.02)
    assert ac[8] == pytest.approx(0.999002, abs=5e-7)
    assert ac[10] == pytest.approx(0.998749, abs=5e-7)
    assert ac[49] == pytest.approx(0.991116, abs=5e-7)
    assert inference_timesteps(2, 20) == [10, 0]
    assert inference_timesteps(3, 20) == [13, 7, 0]
    sched = TruncatedSchedule.from_config(load_config("navsim").trajectory_head)
    assert sched.start_timestep == 8  # upstream quirk: start noise level 8, first embedded timestep 10
    assert [s.timestep for s in sched.steps] == [10, 0]
    assert sched.sqrt_alpha_start == pytest.approx(ac[8] ** 0.5)
    assert sched.steps[0].sqrt_alpha_prev == pytest.approx(ac[9] ** 0.5)
    assert sched.steps[-1].sqrt_alpha_prev == 1.0  # alpha past the final step is one


def test_quirk_flags_change_the_computation(tiny_config) -> None:
    base = tiny_config
    head = base.trajectory_head
    fixed = base.replace(
        trajectory_head=type(head)(**{**head.__dict__, "start_at_first_timestep": True, "chain_layer_features": True})
    )
    assert TruncatedSchedule.from_config(fixed.trajectory_head).start_timestep == 10
    m1, m2 = build_model(base, seed=0).eval(), build_model(fixed, seed=0).eval()
    inputs = m1.example_inputs(1)
    with torch.inference_mode():
        assert not torch.allclose(m1(*inputs)["modes"], m2(*inputs)["modes"])


def test_encoder_blocks_of_the_search_space_build_and_run() -> None:
    from diffusiondrive_ros.model.encoders import build_encoder
    from diffusiondrive_ros.model.spec import EncoderSpec, StageSpec

    stages = (
        StageSpec("mbconv", 2, 16, 1, kernel=5, expansion=6),
        StageSpec("sepconv", 1, 24, 2, kernel=7),
        StageSpec("bottleneck", 1, 8, 2),
        StageSpec("basic", 2, 48, 2, skip="none"),
    )
    enc = build_encoder(EncoderSpec(in_channels=1, stem_width=16, stages=stages))
    feats = enc(torch.rand(1, 1, 64, 64))
    assert [f.shape[1] for f in feats] == [16, 24, 32, 48]
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]


def test_invalid_configs_are_rejected_with_a_reason(tmp_path) -> None:
    from diffusiondrive_ros.model.config import config_from_dict

    with pytest.raises(ValueError, match="unknown key"):
        config_from_dict({"neck": {"d_modle": 64}})
    with pytest.raises(ValueError, match="fusion token grid"):
        build_model(config_from_dict({"backbone": {"fusion": {"image_tokens": [7, 32]}}}))
    with pytest.raises(FileNotFoundError, match="known configs"):
        load_config("no-such-config")
