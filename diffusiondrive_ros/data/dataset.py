"""A torch Dataset over a generated dataset folder (manifest + shards), with a deterministic scene-level split.

Shards are loaded lazily and kept in a small per-process LRU cache (a shard is one scene, so a sequential or
scene-grouped sampler hits the cache; a shuffled one re-reads shards, which are small). Items are dicts of tensors
named like the model's inputs and targets.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..model.config import ModelConfig
from . import shards

SPLITS = ("all", "train", "val")
Sample = dict[str, Any]


def is_validation_scene(scene_id: str, val_fraction: float, salt: str = "val") -> bool:
    """Deterministic scene-level split: a hash of the scene id, so adding scenes never moves existing ones."""
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1], got {val_fraction}")
    digest = hashlib.sha256(f"{salt}:{scene_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < val_fraction


def split_scene_ids(scene_ids: Iterable[str], val_fraction: float, salt: str = "val") -> tuple[list[str], list[str]]:
    """(train, val) scene ids, each in the input order."""
    train, val = [], []
    for sid in scene_ids:
        (val if is_validation_scene(sid, val_fraction, salt) else train).append(sid)
    return train, val


class DrivingDataset(Dataset):
    """Samples of a dataset folder written by ``data generate`` (or the NAVSIM converter).

    Each item: camera (3,H,W) float32 in [0,1], lidar (1,S,S) float32, status (8,) float32, trajectory (8,3)
    float32, agent_states (30,5) float32, agent_labels (30,) float32 0/1, bev_semantic_map (H,W) int64, plus
    scene_id (str), t (float), command (int). ``transform`` (an augmentation hook, off by default) maps an item
    to an item.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        split: str = "all",
        val_fraction: float = 0.1,
        config: ModelConfig | None = None,
        cache_shards: int | None = 4,
        transform: Callable[[Sample], Sample] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if cache_shards is not None and cache_shards < 1:
            raise ValueError(f"cache_shards must be >= 1 (or None: keep every shard), got {cache_shards}")
        self.data_dir = Path(data_dir)
        self.manifest = shards.read_manifest(self.data_dir)
        if config is not None:
            expected = {k: list(v) for k, v in shards.sample_shapes(config).items()}
            if self.manifest["shapes"] != expected:
                raise ValueError(
                    f"{self.data_dir} was generated with shapes {self.manifest['shapes']} (config "
                    f"{self.manifest['config_name']!r}), but config {config.name!r} needs {expected}"
                )
        self.max_points_per_pixel = float(self.manifest["lidar_max_points_per_pixel"])
        entries = [s for s in self.manifest["shards"] if s["num_samples"] > 0]
        if split != "all":
            want_val = split == "val"
            entries = [s for s in entries if is_validation_scene(s["scene_id"], val_fraction) == want_val]
        self.shards: list[dict[str, Any]] = entries
        self._ends = np.cumsum([s["num_samples"] for s in entries]).tolist()
        self.cache_shards = cache_shards
        self.transform = transform
        self._cache: OrderedDict[int, tuple[dict[str, np.ndarray], dict]] = OrderedDict()

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    @property
    def scene_ids(self) -> list[str]:
        return [s["scene_id"] for s in self.shards]

    def locate(self, index: int) -> tuple[int, int]:
        """(shard number, sample number inside the shard) of a dataset index."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} samples")
        shard = bisect.bisect_right(self._ends, index)
        start = self._ends[shard - 1] if shard else 0
        return shard, index - start

    def _load(self, shard: int) -> tuple[dict[str, np.ndarray], dict]:
        if shard in self._cache:
            self._cache.move_to_end(shard)
            return self._cache[shard]
        loaded = shards.read_shard(self.data_dir / self.shards[shard]["file"])
        self._cache[shard] = loaded
        while self.cache_shards is not None and len(self._cache) > self.cache_shards:
            self._cache.popitem(last=False)
        return loaded

    def __getitem__(self, index: int) -> Sample:
        shard, i = self.locate(index)
        arrays, meta = self._load(shard)
        lidar = shards.unpack_lidar(arrays["lidar"][i], meta["lidar_encoding"], self.max_points_per_pixel)
        item: Sample = {
            "camera": torch.from_numpy(arrays["camera"][i].astype(np.float32) / np.float32(255.0)),
            "lidar": torch.from_numpy(lidar),
            "status": torch.from_numpy(arrays["status"][i].astype(np.float32)),
            "trajectory": torch.from_numpy(arrays["trajectory"][i].astype(np.float32)),
            "agent_states": torch.from_numpy(arrays["agent_states"][i].astype(np.float32)),
            "agent_labels": torch.from_numpy(arrays["agent_labels"][i].astype(np.float32)),
            "bev_semantic_map": torch.from_numpy(arrays["bev_semantic"][i].astype(np.int64)),
            "scene_id": meta["scene_id"],
            "t": float(arrays["t"][i]),
            "command": int(arrays["command"][i]),
        }
        return self.transform(item) if self.transform is not None else item

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()  # DataLoader workers start with an empty cache
        return state


def collate(items: Sequence[Sample]) -> Sample:
    """Stack tensors along a new batch axis; other values (scene_id, t, command) become lists."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    batch: Sample = {}
    for key in items[0]:
        values = [item[key] for item in items]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return batch


def compose(*transforms: Callable[[Sample], Sample]) -> Callable[[Sample], Sample]:
    """Chain augmentation hooks left to right."""

    def apply(item: Sample) -> Sample:
        for transform in transforms:
            item = transform(item)
        return item

    return apply
