"""The torch Dataset: item tensors, scene-level split, lazy shard cache, collate, augmentation hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from diffusiondrive_ros.data import shards
from diffusiondrive_ros.data.dataset import DrivingDataset, collate, compose, is_validation_scene, split_scene_ids
from diffusiondrive_ros.data.synthetic import iter_synthetic_samples
from diffusiondrive_ros.model.config import load_config
from diffusiondrive_ros.sim import datagen as gen

SOURCE = "diffusiondrive_ros.data.synthetic:iter_synthetic_samples"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, tiny_config):
    out = tmp_path_factory.mktemp("dataset")
    gen.generate(out, 12, 0, 0, tiny_config, samples_per_scene=2, source=SOURCE, progress=False)
    return out


def test_items_have_model_names_shapes_and_dtypes(data_dir, tiny_config):
    ds = DrivingDataset(data_dir, config=tiny_config)
    assert len(ds) == 24
    item = ds[3]  # scene 1, sample 1
    shapes = shards.sample_shapes(tiny_config)
    expected = {"camera": (torch.float32, shapes["camera"]), "lidar": (torch.float32, shapes["lidar"]),
                "status": (torch.float32, (8,)), "trajectory": (torch.float32, (8, 3)),
                "agent_states": (torch.float32, (30, 5)), "agent_labels": (torch.float32, (30,)),
                "bev_semantic_map": (torch.int64, shapes["bev_semantic"])}
    for key, (dtype, shape) in expected.items():
        assert item[key].dtype == dtype and tuple(item[key].shape) == shape, key
    assert item["camera"].min() >= 0.0 and item["camera"].max() <= 1.0
    assert item["scene_id"] == "synthetic-1" and item["t"] == 0.5
    sample = list(iter_synthetic_samples(1, tiny_config, max_samples=2))[1]
    np.testing.assert_array_equal(item["trajectory"].numpy(), sample.expert_future)
    np.testing.assert_array_equal(item["bev_semantic_map"].numpy(), sample.bev_semantic)
    assert ds[-1]["scene_id"] == "synthetic-11"
    with pytest.raises(IndexError):
        ds[24]


def test_split_is_by_scene_deterministic_and_disjoint(data_dir):
    full = DrivingDataset(data_dir)
    train = DrivingDataset(data_dir, split="train", val_fraction=0.3)
    val = DrivingDataset(data_dir, split="val", val_fraction=0.3)
    assert set(train.scene_ids).isdisjoint(val.scene_ids)
    assert sorted(train.scene_ids + val.scene_ids) == sorted(full.scene_ids)
    assert len(train) + len(val) == len(full) and len(val) > 0 and len(train) > 0
    assert DrivingDataset(data_dir, split="val", val_fraction=0.3).scene_ids == val.scene_ids
    ids = [f"scene-{i}" for i in range(2000)]
    tr, va = split_scene_ids(ids, 0.1)
    assert 150 < len(va) < 250 and not set(tr) & set(va)
    # Adding scenes never moves existing ones between splits.
    assert split_scene_ids(ids[:100], 0.1)[1] == [s for s in va if int(s.split("-")[1]) < 100]
    with pytest.raises(ValueError, match="val_fraction"):
        is_validation_scene("x", 1.5)
    with pytest.raises(ValueError, match="split"):
        DrivingDataset(data_dir, split="test")


def test_lazy_cache_is_bounded_and_dataloader_batches(data_dir):
    ds = DrivingDataset(data_dir, cache_shards=2)
    for i in range(0, 12, 2):
        ds[i]
    assert len(ds._cache) == 2
    loader = DataLoader(ds, batch_size=5, shuffle=False, collate_fn=collate, num_workers=0)
    batch = next(iter(loader))
    assert batch["camera"].shape == (5, 3, 64, 256) and batch["bev_semantic_map"].dtype == torch.int64
    assert batch["scene_id"][:3] == ["synthetic-0", "synthetic-0", "synthetic-1"]
    with pytest.raises(ValueError, match="empty"):
        collate([])


def test_augmentation_hook_and_config_mismatch(data_dir):
    def flip_lateral(item):
        item = dict(item)
        item["trajectory"] = item["trajectory"] * torch.tensor([1.0, -1.0, -1.0])
        return item

    plain = DrivingDataset(data_dir)[0]
    flipped = DrivingDataset(data_dir, transform=compose(flip_lateral, flip_lateral))[0]
    torch.testing.assert_close(flipped["trajectory"], plain["trajectory"])
    once = DrivingDataset(data_dir, transform=flip_lateral)[0]
    torch.testing.assert_close(once["trajectory"][:, 1], -plain["trajectory"][:, 1])
    with pytest.raises(ValueError, match="needs"):
        DrivingDataset(data_dir, config=load_config("navsim"))
    with pytest.raises(FileNotFoundError, match="manifest"):
        DrivingDataset(data_dir / "nope")
