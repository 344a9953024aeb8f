"""DDP: gradients of the DSO/EGS supernets with 2 gloo processes under torchrun equal single-process gradients."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nas_compression.supernet.distributed import DistContext
from nas_compression.supernet.gradcheck import supernet_gradients

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_ddp_two_processes_match_single_process_gradients(tmp_path):
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "nas_compression.supernet.gradcheck", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
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
    parts = [DistContext(r, 2).shard(idx) for r in range(2)]
    assert sorted(torch.cat(parts).tolist()) == list(range(8))
    with pytest.raises(ValueError):
        DistContext(0, 3).shard(idx)
