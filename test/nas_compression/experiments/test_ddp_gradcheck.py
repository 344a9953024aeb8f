"""DDP: gradients of the DSO/EGS supernets with 2 gloo processes under torchrun equal single-process gradients."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from diffusiondrive_ros.train.distributed import DistContext, rank_slice
from nas_compression.experiments.ddp_gradcheck import supernet_gradients


@pytest.mark.slow
def test_ddp_two_processes_match_single_process_gradients(tmp_path, repo_root):
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo_root)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "nas_compression.cli", "gradcheck", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = torch.load(out)
    torch.set_num_threads(1)
    single = supernet_gradients(DistContext())
    assert set(ddp) == set(single)
    assert any(k.startswith("dso.lambda_step") for k in ddp) and any("alphas" in k for k in ddp)
    for k in single:
        assert torch.allclose(ddp[k], single[k], atol=1e-5, rtol=1e-4), k


def test_shard_splits_the_global_batch_evenly():
    idx = torch.arange(8)
    parts = [rank_slice(idx, DistContext(r, 2)) for r in range(2)]
    assert sorted(torch.cat(parts).tolist()) == list(range(8))
    with pytest.raises(ValueError):
        rank_slice(idx, DistContext(0, 3))
