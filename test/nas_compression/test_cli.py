"""``nas-compress``: argument errors exit 2 with the reason, a search runs and resumes, every subcommand parses."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from diffusiondrive_ros.model import load_config
from nas_compression import cli
from nas_compression.space.planner import genome_of_config


def test_export_cli_rejects_an_undeployable_genome(tmp_path, capsys):
    g = genome_of_config(load_config("tiny"), 8)
    bad = dataclasses.replace(g, image=g.image.with_bits(4, (8, 8, 8, 8)))
    bad.save(tmp_path / "bad.json")
    assert cli.main(["export", "--genome", str(tmp_path / "bad.json"), "--out", str(tmp_path / "m")]) == 2
    assert "no INT4 convolution" in capsys.readouterr().err
    assert not (tmp_path / "m" / "planner.onnx").exists()


@pytest.mark.slow
def test_search_cli_runs_and_resumes(tmp_path):
    argv = [
        "search",
        "jasq",
        "--task",
        "digits",
        "--budget",
        "3",
        "--population",
        "2",
        "--batch",
        "1",
        "--evaluator",
        "serial",
        "--epochs",
        "0.2",
        "--out",
        str(tmp_path / "run"),
    ]
    assert cli.main(argv) == 0
    assert cli.main(argv) == 0  # resume of a finished run: nothing to do
    assert len((tmp_path / "run" / "candidates.jsonl").read_text().splitlines()) == 3
    assert isinstance(cli.build_parser(), argparse.ArgumentParser)


def test_search_cli_planner_needs_data(tmp_path, capsys):
    argv = ["search", "jasq", "--task", "planner", "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 2
    assert "--data" in capsys.readouterr().err
    assert cli.main([*argv, "--data", str(tmp_path)]) == 2
    assert "manifest.json" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0 and "usage: nas-compress" in capsys.readouterr().out
