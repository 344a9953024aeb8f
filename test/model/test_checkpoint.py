"""Our checkpoint format and the importer of upstream NAVSIM checkpoints (tested against the real key list)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from diffusiondrive_ros.model import build_model, load_config
from diffusiondrive_ros.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from diffusiondrive_ros.model.upstream import import_upstream, ours_to_upstream, upstream_to_ours

DTYPES = {"float32": torch.float32, "int64": torch.int64}
KeyList = list[tuple[str, tuple[int, ...], torch.dtype]]


@pytest.fixture(scope="module")
def upstream_keys(fixtures_dir: Path) -> KeyList:
    """(key, shape, dtype) of every tensor of a real upstream checkpoint (fixtures/upstream_checkpoint_keys.tsv)."""
    rows = []
    for line in (fixtures_dir / "upstream_checkpoint_keys.tsv").read_text().splitlines():
        key, shape, dtype = line.split("\t")
        dims = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
        rows.append((key, dims, DTYPES[dtype]))
    return rows


def fake_upstream_checkpoint(path: Path, keys: KeyList, drop: str | None = None, extra: str | None = None,
                             reshape: str | None = None):
    """A Lightning-style checkpoint with every upstream tensor of ``keys`` (random values) under its upstream name."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, shape, dtype in keys:
        if key == drop:
            continue
        if key == reshape:
            shape = (*shape[:-1], shape[-1] + 1) if shape else (2,)
        if dtype == torch.int64:
            state[key] = torch.randint(0, 100, shape, generator=g)
        else:
            state[key] = torch.randn(shape, generator=g)
    if extra:
        state[extra] = torch.zeros(3)
    torch.save({"epoch": 99, "global_step": 1, "state_dict": state}, path)
    return state


def test_every_upstream_tensor_maps_to_exactly_one_of_ours_with_the_same_shape(upstream_keys) -> None:
    ours = {k: tuple(v.shape) for k, v in build_model(load_config("navsim")).state_dict().items()}
    rows = upstream_keys
    assert len(rows) == 763
    mapped = [upstream_to_ours(k) for k, _, _ in rows]
    assert len(set(mapped)) == len(rows) == len(ours)
    for (key, shape, _), name in zip(rows, mapped):
        assert ours[name] == shape, key
    # ... and the reverse naming reproduces the upstream list.
    assert set(ours_to_upstream(build_model(load_config("navsim"))).values()) == {k for k, _, _ in rows}


def test_upstream_import_round_trips_every_tensor(tmp_path: Path, upstream_keys) -> None:
    path = tmp_path / "upstream.ckpt"
    state = fake_upstream_checkpoint(path, upstream_keys)
    model = import_upstream(path, load_config("navsim"))
    ours = model.state_dict()
    for name, up_name in ours_to_upstream(model).items():
        assert torch.equal(ours[name], state[up_name]), name
    # The imported model runs, and re-saving it in our format loads back identically.
    save_checkpoint(model, tmp_path / "ours.safetensors")
    loaded, cfg = load_checkpoint(tmp_path / "ours.safetensors")
    assert cfg.name == "navsim"
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, ours[k]), k


@pytest.mark.parametrize(
    ("kind", "message"),
    [("drop", "missing keys"), ("extra", "not an upstream DiffusionDrive key"), ("reshape", "shape mismatches")],
)
def test_upstream_import_fails_clearly_on_a_wrong_checkpoint(
    tmp_path: Path, upstream_keys: KeyList, kind: str, message: str
) -> None:
    victim = "agent._transfuser_model._trajectory_head.diff_decoder.layers.1.ffn.0.weight"
    path = tmp_path / "bad.ckpt"
    kwargs = {"drop": victim} if kind == "drop" else {"reshape": victim} if kind == "reshape" else {"extra": "foo.bar"}
    fake_upstream_checkpoint(path, upstream_keys, **kwargs)
    with pytest.raises(CheckpointError, match=message) as err:
        import_upstream(path, load_config("navsim"))
    if kind != "extra":
        assert "diff_decoder.layers.1.ffn.0.weight" in str(err.value)


def test_upstream_import_rejects_files_that_are_not_checkpoints(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        import_upstream(junk, load_config("navsim"))
    with pytest.raises(CheckpointError, match="not found"):
        import_upstream(tmp_path / "missing.ckpt", load_config("navsim"))


def test_our_checkpoint_round_trip_and_errors(tmp_path: Path, tiny_config) -> None:
    model = build_model(tiny_config, seed=1).eval()
    path = save_checkpoint(model, tmp_path / "tiny.safetensors", extra={"epoch": 3})
    loaded, cfg = load_checkpoint(path)
    assert cfg == model.config
    inputs = model.example_inputs(1)
    with torch.inference_mode():
        torch.testing.assert_close(model(*inputs)["modes"], loaded(*inputs)["modes"], rtol=0, atol=0)

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a diffusiondrive_ros checkpoint"):
        load_checkpoint(truncated)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")

    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="no format tag"):
        load_checkpoint(foreign)
