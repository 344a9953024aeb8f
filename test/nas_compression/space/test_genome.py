"""Genomes: JSON round trip, stable hash, ResNet-34 as a genome, planner build, rejection with reasons."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from diffusiondrive_ros.model import build_model, load_config
from diffusiondrive_ros.model.spec import resnet_spec
from nas_compression.space.genome import (
    DeployabilityError,
    Genome,
    StageGene,
    check_deployable,
    genome_from_json,
    resnet_genome,
)
from nas_compression.space.planner import genome_of_config, planner_config
from nas_compression.space.sampling import SearchSpace, mutate, random_genome, random_policy
from nas_compression.tasks.classify import classify_template


def test_resnet34_is_one_genome_and_round_trips():
    g = resnet_genome("resnet34")
    assert g.image.to_spec() == resnet_spec("resnet34", 3)
    assert g.lidar.to_spec() == resnet_spec("resnet34", 1)
    back = genome_from_json(g.to_json())
    assert back == g and back.hash == g.hash
    assert genome_from_json(g.to_json(indent=2)).hash == g.hash  # formatting does not change identity
    assert g.hash == "2d7c681006170421"  # stable across processes and runs (sha256 of canonical JSON)


def test_hash_changes_with_any_choice():
    g = resnet_genome("resnet18")
    stages = list(g.image.stages)
    stages[2] = dataclasses.replace(stages[2], bits=16)
    g2 = dataclasses.replace(g, image=dataclasses.replace(g.image, stages=tuple(stages)))
    assert g2.hash != g.hash


def test_save_load(tmp_path):
    g = random_genome(np.random.default_rng(3), SearchSpace(), classify_template())
    assert Genome.load(g.save(tmp_path / "g.json")) == g


def test_unknown_keys_are_rejected():
    d = resnet_genome().to_dict()
    d["image"]["stages"][0]["colour"] = "red"
    with pytest.raises(ValueError, match="colour"):
        Genome.from_dict(d)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (dict(bits=4), "no INT4 convolution"),
        (dict(bits=2), "research flag only"),
        (dict(bits=12), "not a precision"),
        (dict(block="mbconv", expansion=4), "expansion must be one of"),
        (dict(block="basic", expansion=6), "expansion applies to mbconv only"),
        (dict(kernel=4), "kernel 4"),
        (dict(block="ghost"), "block 'ghost'"),
    ],
)
def test_undeployable_stage_rejected_with_reason(change, reason):
    g = classify_template()
    stages = list(g.image.stages)
    stages[1] = dataclasses.replace(stages[1], **change)
    bad = dataclasses.replace(g, image=dataclasses.replace(g.image, stages=tuple(stages)))
    with pytest.raises(DeployabilityError, match=reason) as err:
        check_deployable(bad)
    assert any("stages[1]" in r for r in err.value.reasons)


def test_int4_is_allowed_on_linear_only():
    g = dataclasses.replace(classify_template(), linear_bits=4)
    check_deployable(g)
    with pytest.raises(DeployabilityError, match="stem"):
        check_deployable(dataclasses.replace(g, image=dataclasses.replace(g.image, stem_bits=4)))


def test_every_problem_is_listed_and_nothing_is_changed():
    g = classify_template()
    bad = dataclasses.replace(g, image=g.image.with_bits(2, (4, 8, 8, 2)), linear_bits=2)
    with pytest.raises(DeployabilityError) as err:
        check_deployable(bad)
    assert len(err.value.reasons) == 4
    assert bad.image.stem_bits == 2  # not silently repaired


def test_planner_builds_from_a_genome():
    cfg = load_config("tiny")
    base = genome_of_config(cfg)
    rng = np.random.default_rng(0)
    space = SearchSpace(width_mults=(0.5, 1.0), depths=(1,))
    g = random_genome(rng, space, base)
    model = build_model(planner_config(g, cfg), seed=0).eval()
    with torch.no_grad():
        out = model(*model.example_inputs(1))
    assert out["trajectory"].shape == (1, 8, 3)


def test_planner_rejects_incompatible_genomes():
    cfg = load_config("tiny")
    base = genome_of_config(cfg)
    # An extra stride-2 stage makes the camera's last grid (1 x 4) smaller than the 2 x 8 fusion tokens.
    too_deep = dataclasses.replace(base, image=dataclasses.replace(base.image, strides=(2, 2, 2, 2)))
    with pytest.raises(DeployabilityError, match="fusion token grid"):
        planner_config(too_deep, cfg)
    stages = list(base.image.stages)
    stages[0] = dataclasses.replace(stages[0], width_mult=1.0 / 16 * 6)  # width 6, not divisible by 4 heads
    with pytest.raises(DeployabilityError, match="fusion heads"):
        planner_config(dataclasses.replace(base, image=dataclasses.replace(base.image, stages=tuple(stages))), cfg)
    with pytest.raises(DeployabilityError, match="LiDAR encoder"):
        planner_config(dataclasses.replace(base, lidar=None), cfg)


def test_mutation_changes_one_bit_width_in_policy_only_mode():
    rng = np.random.default_rng(1)
    space = SearchSpace()
    base = random_policy(rng, space, classify_template())
    for _ in range(20):
        child = mutate(base, rng, space, policy_only=True)
        assert child.image.to_spec() == base.image.to_spec()  # architecture fixed
        check_deployable(child)


def test_random_and_mutated_genomes_are_deployable():
    rng = np.random.default_rng(2)
    space = SearchSpace()
    g = random_genome(rng, space, classify_template())
    for _ in range(30):
        g = mutate(g, rng, space)
        check_deployable(g)
        assert isinstance(g.image.stages[0], StageGene)
