"""Fixtures shared by the whole suite: the tiny model config, the repository's own files, the MetaDrive skip.

The folders below mirror the packages (test/model for diffusiondrive_ros.model, ...); test/fixtures holds data files
the tests read. Modules are imported in pytest's importlib mode (pyproject.toml), so test modules cannot import each
other: what they share lives here, in a folder's conftest.py, or in a helper module next to the tests that use it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from diffusiondrive_ros.model.config import ModelConfig, load_config  # no torch: safe before the sim's OMP setting

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"


# -- the model config -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_config() -> ModelConfig:
    """``load_config("tiny")``, read once: ModelConfig is a frozen dataclass, tests derive variants with replace()."""
    return load_config("tiny")


# -- the repository's files -------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout's root folder (the parent of test/)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """test/fixtures: data files read by the tests (e.g. the upstream checkpoint's key list)."""
    return FIXTURES_DIR


@pytest.fixture(scope="session")
def benchmark_dir(repo_root: Path) -> Path:
    """models/benchmark: the frozen benchmark scenes."""
    return repo_root / "models" / "benchmark"


@pytest.fixture(scope="session")
def fastdds_profile(repo_root: Path) -> Path:
    """config/fastdds.xml: the shipped Fast DDS profile (large shared-memory segment)."""
    return repo_root / "config" / "fastdds.xml"


@pytest.fixture(scope="session")
def planner_params_file(repo_root: Path) -> Path:
    """config/planner.yaml: the node's default parameter file."""
    return repo_root / "config" / "planner.yaml"


@pytest.fixture(scope="session")
def launch_file(repo_root: Path) -> Path:
    """launch/planner.launch.py."""
    return repo_root / "launch" / "planner.launch.py"


@pytest.fixture(scope="session")
def docker_dir(repo_root: Path) -> Path:
    """docker/: Dockerfiles, compose file, entry point and the images' parameter files."""
    return repo_root / "docker"


# -- MetaDrive --------------------------------------------------------------------------------------------------------
def metadrive_import_error() -> ImportError | None:
    """Import MetaDrive as ``pytest.importorskip`` would; the error if it cannot be imported, else None.

    ``diffusiondrive_ros.sim`` is imported first on purpose: it sets OMP_WAIT_POLICY, which must be in the environment
    before MetaDrive loads pygame's OpenMP runtime (see diffusiondrive_ros/sim/__init__.py).
    """
    importlib.import_module("diffusiondrive_ros.sim")
    try:
        importlib.import_module("metadrive")
    except ImportError as exc:
        return exc
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``sim`` (pyproject.toml: "needs MetaDrive") are skipped when MetaDrive cannot be imported.

    MetaDrive is only imported when a ``sim`` test was collected, so runs without one never load it.
    """
    sim_items = [item for item in items if item.get_closest_marker("sim") is not None]
    if not sim_items:
        return
    error = metadrive_import_error()
    if error is not None:
        skip = pytest.mark.skip(reason=f"metadrive-simulator is not installed ({error})")
        for item in sim_items:
            item.add_marker(skip)
