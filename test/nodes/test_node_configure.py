"""Configure across processes: SIGTERM/SIGINT during a slow configure, configure errors that name their cause, the
model identity on /diagnostics, and ``-p`` overrides of the wrong type with and without a params file.

Each node runs in its own process (ros_harness.NodeProcess); the slow configure is test_stub_planner.SlowStubPlanner
(a long constructor standing in for a TensorRT engine build, or slow warm-up plans).
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 Python wheels (rclpy) are not installed")

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from ros_harness import REPO, NodeProcess, Probe, wait_until  # noqa: E402

from diffusiondrive_ros.nodes.launch_spec import NodeLaunch  # noqa: E402
from diffusiondrive_ros.runtime.model_dir import model_fingerprint  # noqa: E402

pytestmark = pytest.mark.ros
TINY = REPO / "models" / "tiny"
EXIT_WITHIN_S = 2.0


@pytest.mark.parametrize(("slow", "signum"), [
    ("{load_s: 120.0}", signal.SIGTERM),  # a long native call: the model load / engine build
    ("{plan_s: 0.5}", signal.SIGINT),  # a long warm-up (warmup_runs 500)
], ids=["sigterm-during-load", "sigint-during-warmup"])
def test_a_signal_during_a_slow_configure_ends_the_node_quickly(tmp_path: Path, slow: str, signum: int) -> None:
    launch = NodeLaunch(overrides={"backend": "test_stub_planner:SlowStubPlanner", "backend_options": slow,
                                   "warmup_runs": 500, "autostart": True})
    node = NodeProcess(launch, tmp_path / "slow.log")
    try:
        wait_until(lambda: "SlowStubPlanner: loading" in node.log() or not node.alive(), 60.0, "configure to start")
        time.sleep(0.5)  # well inside the load or the warm-up
        assert node.alive(), node.log()
        sent = time.monotonic()
        node.process.send_signal(signum)
        node.process.wait(10.0)
        took = time.monotonic() - sent
    finally:
        code = node.stop()
    log = node.log_path.read_text()
    assert took <= EXIT_WITHIN_S, f"exited {took:.2f} s after the signal:\n{log}"
    assert code == 0, log
    assert "configure interrupted by a shutdown request" in log, log
    assert "Failed to complete transition" not in log and "error in state" not in log, log


def _bad_model_dirs(root: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    """name -> (model directory, phrases its configure error must contain)."""
    onnx = (TINY / "planner.onnx").read_bytes()
    cases = {
        "truncated_onnx": (lambda d: (d / "planner.onnx").write_bytes(onnx[: len(onnx) // 3]),
                           ("planner.onnx", "INVALID_PROTOBUF")),
        "random_onnx": (lambda d: (d / "planner.onnx").write_bytes(bytes(range(256)) * 64),
                        ("planner.onnx", "Protobuf parsing failed")),
        "empty_onnx": (lambda d: (d / "planner.onnx").write_bytes(b""), ("planner.onnx", "No graph was found")),
        "yaml_syntax": (lambda d: (d / "model.yaml").write_text("name: tiny\ncamera: [unclosed\n  x: 1\n"),
                        ("model.yaml", "line 3", "ParserError")),
        "yaml_unknown_key": (lambda d: (d / "model.yaml").write_text((TINY / "model.yaml").read_text() + "bogus: 1\n"),
                             ("model.yaml", "unknown key(s) ['bogus']")),
        "no_model_yaml": (lambda d: (d / "model.yaml").unlink(), ("is not a model directory", "no model.yaml",
                                                                  "planner.onnx")),
    }
    out = {}
    for name, (spoil, phrases) in cases.items():
        folder = root / name
        folder.mkdir()
        for file in ("model.yaml", "planner.onnx", "anchors.npy"):
            shutil.copy(TINY / file, folder / file)
        spoil(folder)
        out[name] = (folder, phrases)
    return out


def test_configure_errors_name_their_cause_and_diagnostics_name_the_model(ros_context, tmp_path: Path) -> None:
    node = NodeProcess(NodeLaunch(overrides={"backend": "onnxruntime", "diagnostics_period_s": 0.25}),
                       tmp_path / "node.log")
    probe = Probe(ros_context)
    try:
        assert probe.state() == "unconfigured"
        for name, (folder, phrases) in _bad_model_dirs(tmp_path).items():
            mark = len(node.log())
            assert probe.set_parameter("model_path", str(folder))
            assert not probe.transition(Transition.TRANSITION_CONFIGURE), name
            assert probe.state() == "unconfigured"
            wait_until(lambda mark=mark: "configure failed" in node.log()[mark:], 10.0, f"the {name} error")
            error = next(line for line in node.log()[mark:].splitlines() if "configure failed" in line)
            assert str(folder) in error and all(p in error for p in phrases), (name, error)
        assert "error in state" not in node.log()
        # A model directory brings its own config: the log and /diagnostics name it, not model_config's.
        assert probe.set_parameter("model_config", "navsim")
        assert probe.set_parameter("model_path", str(TINY))
        assert probe.transition(Transition.TRANSITION_CONFIGURE), node.log()[-3000:]
        assert "model tiny from" in node.log()
        wait_until(lambda: (d := probe.latest_diagnostics(0.0)) is not None and "model_sha256" in d, 10.0,
                   "diagnostics with the model identity")
        diag = probe.latest_diagnostics(0.0)
        assert diag["model_sha256"] == model_fingerprint(TINY)
        assert diag["model_config"] == "tiny" and Path(diag["model_path"]) == TINY.resolve()
        assert diag["backend"] == "onnxruntime" and "CPUExecutionProvider" in diag["providers"]
        with probe.lock:
            assert probe.diagnostics[-1][2] == DiagnosticStatus.OK
    finally:
        probe.close()
        node.stop()


@pytest.mark.parametrize("params_file", [True, False], ids=["with-params-file", "without-params-file"])
def test_wrong_type_overrides_fail_configure_naming_the_parameter(tmp_path: Path, params_file: bool) -> None:
    launch = NodeLaunch(overrides={"backend": "test_stub_planner:StubPlanner", "autostart": True},
                        **({} if params_file else {"params_files": []}))
    # Written as a user types them (NodeLaunch would quote strings): rcl reads "fast" and "abc" as strings.
    node = NodeProcess(launch, tmp_path / "node.log", extra_args=["-p", "rate_hz:=fast", "-p", "seed:=abc"])
    try:
        wait_until(lambda: "configure failed" in node.log() or not node.alive(), 60.0, "configure to fail")
        assert node.alive(), node.log()
        error = next(line for line in node.log().splitlines() if "configure failed" in line)
        assert "'rate_hz'" in error and "'seed'" in error and "expected float" in error, error
        assert "active: planning" not in node.log()
    finally:
        node.stop()
