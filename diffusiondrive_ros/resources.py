"""Where the package's data files are: the source tree, else an installed ROS share folder.

``setup.py`` installs ``config/``, ``launch/`` and ``models/`` under ``share/diffusiondrive_ros/``; a source checkout
has them at the repository root. Every lookup of a shipped file goes through :func:`find_resource`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "diffusiondrive_ros"


def resource_roots() -> list[Path]:
    """Folders holding ``config/``, ``launch/``, ``models/``: the source tree, then each ``share/<package>`` of the
    ament prefixes (``AMENT_PREFIX_PATH``) and of this Python environment."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    return [Path(__file__).resolve().parents[1], *(Path(p) / "share" / PACKAGE for p in prefixes)]


def resource_candidates(*parts: str) -> list[Path]:
    """``<root>/<parts...>`` for every root, in search order."""
    return [root.joinpath(*parts) for root in resource_roots()]


def find_resource(*parts: str, must_contain: str | None = None) -> Path:
    """The first existing ``<root>/<parts...>`` (a file, or a folder holding ``must_contain``)."""
    candidates = resource_candidates(*parts)
    for path in candidates:
        if (path / must_contain).exists() if must_contain else path.exists():
            return path
    raise FileNotFoundError(f"{'/'.join(parts)} not found; looked in {[str(c) for c in candidates]}")
