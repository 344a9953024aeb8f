"""``data generate``: shard content, resume after a killed run, the spawn pool, argument checks, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from diffusiondrive_ros.data import shards
from diffusiondrive_ros.data.synthetic import iter_synthetic_samples
from diffusiondrive_ros.runtime.preprocess import preprocess_frame
from diffusiondrive_ros.sim import datagen as gen
from diffusiondrive_ros.sim.metadrive_env import metadrive_available
from diffusiondrive_ros.sim.world import AGENT_KINDS

SOURCE = "diffusiondrive_ros.data.synthetic:iter_synthetic_samples"
FAILING_SOURCE = f"{__name__}:failing_source"  # this module, as pytest imported it


def failing_source(seed, config, sample_interval_s=0.5, max_samples=None, perturb=False):
    """The synthetic source, except that scene 3 crashes after one sample."""
    for i, sample in enumerate(iter_synthetic_samples(seed, config, sample_interval_s, max_samples, perturb)):
        if seed == 3 and i == 1:
            raise RuntimeError("simulator crashed")
        yield sample


OPTIONED_SOURCE = f"{__name__}:optioned_source"
SEEN_OPTIONS: list[dict] = []


def optioned_source(seed, config, sample_interval_s=0.5, max_samples=None, perturb=False, **options):
    """The synthetic source, recording the extra keyword arguments (scene distribution, source options) it got."""
    SEEN_OPTIONS.append(options)
    yield from iter_synthetic_samples(seed, config, sample_interval_s, max_samples, perturb)


@pytest.fixture
def generate(tiny_config):
    """``gen.generate`` on the tiny config, quietly, from the synthetic source unless ``source`` names another."""

    def run(out, scenes=3, seed=0, workers=0, source=SOURCE, **kw):
        kw.setdefault("samples_per_scene", 2)
        return gen.generate(out, scenes, seed, workers, tiny_config, source=source, progress=False, **kw)

    return run


def _contents(out):
    return {p.name: shards.read_shard(p)[0] for p in sorted(out.glob("shard-*.npz"))}


def test_shards_hold_the_preprocessed_inputs_and_targets_exactly(tmp_path, generate, tiny_config):
    manifest = generate(tmp_path, scenes=2, seed=10)
    assert manifest["num_scenes"] == 2 and manifest["num_samples"] == 4
    assert manifest["config_name"] == "tiny" and manifest["shapes"]["lidar"] == [1, 128, 128]
    assert [s["file"] for s in manifest["shards"]] == ["shard-000010.npz", "shard-000011.npz"]
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    arrays, meta = shards.read_shard(tmp_path / "shard-000011.npz")
    assert meta["scene_id"] == "synthetic-11" and meta["lidar_encoding"] == shards.LIDAR_UINT8
    vehicle = AGENT_KINDS.index("vehicle")
    for i, sample in enumerate(iter_synthetic_samples(11, tiny_config, max_samples=2)):
        inputs = preprocess_frame(sample.frame, tiny_config)
        np.testing.assert_array_equal(arrays["camera"][i].astype(np.float32) / np.float32(255), inputs.camera[0])
        np.testing.assert_array_equal(shards.unpack_lidar(arrays["lidar"][i], meta["lidar_encoding"], 5.0),
                                      inputs.lidar[0])
        np.testing.assert_array_equal(arrays["status"][i], inputs.status[0])
        np.testing.assert_array_equal(arrays["trajectory"][i], sample.expert_future)
        np.testing.assert_array_equal(arrays["bev_semantic"][i], sample.bev_semantic)
        assert arrays["t"][i] == sample.t and arrays["command"][i] == sample.frame.command_index()
        # Only vehicles inside the LiDAR square fill the agent slots.
        boxes, kinds = sample.agent_boxes, sample.agent_kinds
        reach = tiny_config.lidar.range_m
        wanted = (kinds == vehicle) & (np.abs(boxes[:, 0]) <= reach) & (np.abs(boxes[:, 1]) <= reach)
        assert arrays["agent_labels"][i].sum() == min(wanted.sum(), 30)


def test_resume_skips_complete_shards_removes_temp_and_broken_ones(tmp_path, generate):
    generate(tmp_path, scenes=3)
    first = _contents(tmp_path)
    # Emulate a killed run: a temp file mid-write, a deleted shard, a shard corrupted after its checksum was taken.
    (tmp_path / ".shard-000003.npz.999.tmp").write_bytes(b"partial")
    (tmp_path / "shard-000001.npz").unlink()
    broken = tmp_path / "shard-000002.npz"
    broken.write_bytes(broken.read_bytes()[:-10] + b"0123456789")
    untouched = (tmp_path / "shard-000000.npz").stat().st_mtime_ns
    manifest = generate(tmp_path, scenes=4)  # also extends the dataset by one scene
    assert not list(tmp_path.glob(".*.tmp"))
    assert (tmp_path / "shard-000000.npz").stat().st_mtime_ns == untouched  # skipped, not rewritten
    assert manifest["num_scenes"] == 4 and manifest["num_samples"] == 8
    second = _contents(tmp_path)
    for name, arrays in first.items():
        for key, value in arrays.items():
            np.testing.assert_array_equal(second[name][key], value)
    for entry in manifest["shards"]:
        assert shards.file_sha256(tmp_path / entry["file"]) == entry["sha256"]


def test_manifest_is_rebuilt_from_shards_alone(tmp_path, generate):
    before = generate(tmp_path, scenes=2)
    (tmp_path / "manifest.json").unlink()
    after = generate(tmp_path, scenes=2)
    assert after["shards"] == before["shards"]


def test_other_generator_args_in_the_same_folder_are_refused(tmp_path, generate):
    generate(tmp_path, scenes=1)
    with pytest.raises(ValueError, match="another --out"):
        generate(tmp_path, scenes=1, samples_per_scene=3)


def test_argument_checks():
    with pytest.raises(ValueError, match="training range"):
        gen.training_seeds(99_999, 2)
    with pytest.raises(ValueError, match="scenes"):
        gen.training_seeds(0, 0)
    with pytest.raises(ValueError, match="agent kind"):
        gen.agent_kind_indices(["truck"])
    with pytest.raises(ImportError, match="sample source"):
        gen.load_source("diffusiondrive_ros.data.synthetic:nope")
    with pytest.raises(ValueError, match="package.module:function"):
        gen.load_source("no_colon")


def test_a_failing_scene_does_not_lose_the_others(tmp_path, generate):
    with pytest.raises(gen.GenerationError, match="seed 3"):
        generate(tmp_path, scenes=3, seed=2, source=FAILING_SOURCE)
    manifest = shards.read_manifest(tmp_path)
    assert [s["seed"] for s in manifest["shards"]] == [2, 4]
    assert not list(tmp_path.glob(".*.tmp"))


def test_raw_sensors_are_stored_on_request(tmp_path, generate, tiny_config):
    generate(tmp_path, scenes=1, samples_per_scene=2, raw=True)
    arrays, _ = shards.read_shard(tmp_path / "shard-000000.npz")
    samples = list(iter_synthetic_samples(0, tiny_config, max_samples=2))
    offsets = arrays["raw_lidar_offsets"]
    assert offsets.tolist() == [0, 3000, 6000]
    np.testing.assert_array_equal(arrays["raw_lidar_points"][offsets[1]:offsets[2]], samples[1].frame.lidar_points)
    np.testing.assert_array_equal(arrays["raw_cameras"][0, 2], samples[0].frame.cameras[2])


@pytest.mark.slow
def test_spawn_pool_matches_in_process_run(tmp_path, generate):
    serial, pooled = tmp_path / "serial", tmp_path / "pooled"
    generate(serial, scenes=2, samples_per_scene=1)
    manifest = generate(pooled, scenes=2, samples_per_scene=1, workers=2)
    assert manifest["num_samples"] == 2
    a, b = _contents(serial), _contents(pooled)
    assert a.keys() == b.keys()
    for name in a:
        for key in a[name]:
            np.testing.assert_array_equal(a[name][key], b[name][key])


def test_cli_main(tmp_path, capsys):
    from diffusiondrive_ros.cli import main

    rc = main(["data", "generate", "--scenes", "2", "--seed", "7", "--workers", "0", "--out", str(tmp_path),
               "--config", "tiny", "--samples-per-scene", "1", "--source", SOURCE, "--no-progress"])
    assert rc == 0 and "2 scenes, 2 samples" in capsys.readouterr().out
    assert shards.read_manifest(tmp_path)["generator"]["first_seed"] == 7


def slow_source(seed, config, sample_interval_s=0.5, max_samples=None, perturb=False):
    """The synthetic source at ~5 samples/s, so a run can be killed part-way."""
    for sample in iter_synthetic_samples(seed, config, sample_interval_s, max_samples, perturb):
        time.sleep(0.2)
        yield sample


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_same_dataset(tmp_path, monkeypatch, repo_root, generate):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    # The killed run and the resume in this process must name the same source: this file by its plain module name,
    # importable from its folder in both (pytest's own name for it, test.sim.test_datagen, is not importable).
    here = Path(__file__).resolve().parent
    source = f"{Path(__file__).stem}:slow_source"
    monkeypatch.syspath_prepend(str(here))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo_root), str(here), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "diffusiondrive_ros.cli", "data", "generate", "--scenes", "6", "--seed", "0",
           "--workers", "0", "--out", str(killed), "--samples-per-scene", "2", "--source", source, "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (killed / "shard-000001.npz").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "generator died or stalled"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done_before = sorted(p.name for p in killed.glob("shard-*.npz"))
    assert 2 <= len(done_before) < 6
    manifest = generate(killed, scenes=6, source=source)
    generate(clean, scenes=6)
    assert manifest["num_samples"] == 12 and not list(killed.glob(".*.tmp"))
    a, b = _contents(killed), _contents(clean)
    assert a.keys() == b.keys()
    for name in a:
        for key in a[name]:
            np.testing.assert_array_equal(a[name][key], b[name][key])


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.skipif(not metadrive_available(), reason="needs metadrive-simulator")
def test_generate_from_the_simulator(tmp_path, tiny_config):
    manifest = gen.generate(tmp_path, 1, 0, 0, tiny_config, samples_per_scene=2, progress=False)
    assert manifest["num_samples"] == 2 and manifest["generator"]["source"] == gen.DEFAULT_SOURCE
    arrays, meta = shards.read_shard(tmp_path / "shard-000000.npz")
    assert meta["scene_id"] and arrays["trajectory"].shape == (2, 8, 3)
    assert np.all(np.diff(arrays["trajectory"][1, :, 0]) >= 0)  # the expert drives forward


def test_the_scene_distribution_and_source_options_reach_the_source_and_the_records(tmp_path, generate):
    from diffusiondrive_ros.sim.scenes import DIVERSE, SceneSpec, scene_of_seed

    SEEN_OPTIONS.clear()
    manifest = generate(tmp_path, scenes=2, seed=40, source=OPTIONED_SOURCE, distribution="diverse",
                        source_options={"model": "/m", "model_sha256": "abc"})
    assert SEEN_OPTIONS == [{"scenes": "diverse", "model": "/m", "model_sha256": "abc"}] * 2
    assert manifest["generator"]["scene_distribution"] == DIVERSE.to_dict()
    assert manifest["generator"]["distribution"] == "diverse"
    assert manifest["generator"]["source_options"] == {"model": "/m", "model_sha256": "abc"}
    _, meta = shards.read_shard(tmp_path / "shard-000041.npz")
    assert SceneSpec.from_dict(meta["scene"]) == scene_of_seed(41, "diverse")
    with pytest.raises(ValueError, match="use another --out"):  # a resume must not switch the planner
        generate(tmp_path, scenes=2, seed=40, source=OPTIONED_SOURCE, distribution="diverse",
                 source_options={"model": "/m", "model_sha256": "def"})
    with pytest.raises(ValueError, match="unknown scene distribution"):
        generate(tmp_path / "x", scenes=1, source=OPTIONED_SOURCE, distribution="nowhere")
