"""Pure-Python parts of the node: parameter table, input synchronisation, statistics, command-line description."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from diffusiondrive_ros.nodes.cancellable import Cancelled, abandoned_jobs, run_cancellable
from diffusiondrive_ros.nodes.launch_spec import (
    FASTDDS_PROFILE_VARIABLE,
    MODULE,
    NodeLaunch,
    default_params_file,
    node_environment,
)
from diffusiondrive_ros.nodes.params import (
    NodeParams,
    ParameterError,
    command_line_overrides,
    declarations,
    defaults,
    override_type_errors,
    params_from_values,
)
from diffusiondrive_ros.nodes.plausibility import Bounds, check_twist, filter_points
from diffusiondrive_ros.nodes.stats import NodeStats, PublicationGaps, recent_problems
from diffusiondrive_ros.nodes.sync import (
    AccelerationEstimator,
    InputStore,
    OutOfOrderError,
    RejectedInput,
    Stamped,
    checked_stamp,
)
from diffusiondrive_ros.nodes.trigger import RATE_BURST, NewInputWorker, RateCap


def test_params_file_mirrors_the_table(planner_params_file):
    with open(planner_params_file) as f:
        values = yaml.safe_load(f)["/**"]["ros__parameters"]
    assert values == defaults()
    assert params_from_values(values) == NodeParams()
    assert default_params_file() == planner_params_file
    assert all(doc for _, _, doc in declarations())


def test_params_coerce_ints_to_floats_and_parse_backend_options():
    params = params_from_values({"rate_hz": 30, "lidar_extrinsic": [0, 0, 1, 0, 0, 0],
                                 "backend_options": "{precision: bf16, num_threads: 2}"})
    assert params.rate_hz == 30.0 and isinstance(params.rate_hz, float)
    assert params.lidar_extrinsic == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    assert params.backend_option_dict() == {"precision": "bf16", "num_threads": 2}
    assert params_from_values({"backend": "my.pkg:MyPlanner"}).backend == "my.pkg:MyPlanner"


@pytest.mark.parametrize(("values", "message"), [
    ({"backend": "cuda"}, "unknown backend"),
    ({"rate_hz": 0.0}, "rate_hz"),
    ({"rate_hz": "fast"}, "expected float"),
    ({"sync_tolerance_s": -0.1}, "must be >= 0"),
    ({"camera_transport": "theora"}, "expected one of"),
    ({"command": "reverse"}, "expected one of"),
    ({"lidar_extrinsic": [0.0, 1.0]}, "6 values"),
    ({"model_path": "/no/such/file.pt"}, "does not exist"),
    ({"backend_options": "[1, 2]"}, "YAML mapping"),
    ({"autostart": 1}, "expected bool"),
    ({"no_such_param": 1}, "unknown parameter"),
])
def test_bad_params_raise_naming_the_parameter(values, message):
    with pytest.raises(ParameterError, match=message):
        params_from_values(values)


def _fill(store: InputStore, stamp: float, skip: tuple[str, ...] = ()) -> None:
    for name in store.names:
        if name not in skip:
            store.put(name, stamp, name)


def test_store_selects_synchronised_sets_once():
    store = InputStore(("a", "b", "c"))
    assert store.select(10.0, 0.05, 1.0).missing == ("a", "b", "c")
    _fill(store, 9.9)
    ready = store.select(10.0, 0.05, 1.0)
    assert ready.status == "ready" and ready.stamp == 9.9
    assert {n: s.stamp for n, s in ready.inputs.items()} == {"a": 9.9, "b": 9.9, "c": 9.9}
    assert store.select(10.0, 0.05, 1.0).status == "no_new_data"  # never the same set twice
    _fill(store, 10.0, skip=("c",))  # c lags: the set at c's newest stamp is still the newest complete one
    assert store.select(10.0, 0.05, 1.0).status == "no_new_data"
    store.put("c", 10.01, "c")
    sel = store.select(10.05, 0.05, 1.0)
    assert sel.status == "ready" and sel.stamp == pytest.approx(10.01) and sel.spread_s == pytest.approx(0.01)
    assert sel.superseded == 0
    for stamp in (10.1, 10.2, 10.3):  # three complete sets, only the newest is planned
        _fill(store, stamp)
    sel = store.select(10.3, 0.05, 1.0)
    assert sel.status == "ready" and sel.stamp == pytest.approx(10.3) and sel.superseded == 2


def test_store_unsynchronised_stale_and_out_of_order():
    store = InputStore(("a", "b"))
    store.put("a", 1.0, 0)
    store.put("b", 1.3, 0)
    assert store.select(1.4, 0.05, 1.0).status == "unsynchronised"
    stale = store.select(2.2, 0.05, 1.0)
    assert stale.status == "stale" and stale.stale == ("a",)
    with pytest.raises(OutOfOrderError):
        store.put("b", 1.3, 0)
    with pytest.raises(ValueError):
        store.put("a", float("nan"), 0)
    store.clear()
    assert store.select(2.2, 0.05, 1.0).status == "missing"


def test_acceleration_estimator_filters_and_restarts_after_gaps():
    est = AccelerationEstimator(alpha=0.5, max_gap_s=1.0)
    assert est.update(0.0, 0.0, 0.0) == (0.0, 0.0)
    assert est.update(0.1, 1.0, 0.0) == pytest.approx((5.0, 0.0))  # 0.5 * 10 m/s^2
    assert est.update(0.2, 2.0, -0.1) == pytest.approx((7.5, -0.5))
    assert est.update(5.0, 9.0, 0.0) == (0.0, 0.0)
    with pytest.raises(OutOfOrderError):
        est.update(4.0, 0.0, 0.0)
    unfiltered = AccelerationEstimator(alpha=1.0)
    for k in range(5):
        accel = unfiltered.update(0.05 * k, 2.0 * 0.05 * k, 0.0)
    assert accel == pytest.approx((2.0, 0.0))


def test_stats_summary():
    stats = NodeStats(rate_window_s=5.0)
    for k in range(11):
        stats.record_plan(100.0 + 0.1 * k, latency_ms=float(k))
    stats.record_rejected("lidar", "truncated")
    stats.record_rejected("lidar", "truncated")
    stats.record_dropped(3)
    stats.record_error(non_finite=True)
    summary = stats.summary(101.0)
    assert float(summary["achieved_rate_hz"]) == pytest.approx(10.0)
    assert summary["latency_ms_p50"] == "5.00"
    assert summary["rejected.lidar:truncated"] == "2" and summary["rejected_total"] == "2"
    assert summary["dropped_frames"] == "3" and summary["non_finite_outputs"] == "1"
    assert stats.achieved_rate_hz(200.0) == 0.0


def test_command_line_description():
    launch = NodeLaunch(params_files=["p.yaml"], overrides={"backend": "onnxruntime", "rate_hz": 20.0,
                                                           "autostart": True, "model_path": "",
                                                           "lidar_extrinsic": [0.0, 0.0, 1.8, 0.0, 0.0, 0.0]},
                        remaps={"lidar": "/sensing/lidar/points", "trajectory": "/planning/trajectory"},
                        namespace="planning")
    argv = launch.command()
    assert argv[:3] == [sys.executable, "-m", MODULE]
    assert argv[3:] == [
        "--ros-args", "-r", "__ns:=/planning", "--params-file", "p.yaml",
        "-p", "backend:='onnxruntime'", "-p", "rate_hz:=20.0", "-p", "autostart:=true", "-p", "model_path:=''",
        "-p", "lidar_extrinsic:=[0.0,0.0,1.8,0.0,0.0,0.0]",
        "-r", "~/input/lidar:=/sensing/lidar/points", "-r", "~/output/trajectory:=/planning/trajectory",
    ]
    with pytest.raises(ValueError, match="remappable"):
        NodeLaunch(params_files=[], remaps={"radar": "/x"}).ros_arguments()


def _wait_for(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_rate_cap_holds_the_long_run_rate_and_absorbs_jitter():
    cap = RateCap(rate_hz=10.0, burst=2.0)
    assert cap.delay(0.0) == 0.0
    cap.take(0.0)
    # Frames every 0.1 s with +-30 ms of jitter: a minimum interval would hold back every early frame; the bucket
    # holds back none of them.
    arrivals = [0.1 * k + (0.03 if k % 2 else -0.03) for k in range(1, 40)]
    for t in arrivals:
        assert cap.delay(t) == pytest.approx(0.0)
        cap.take(t)
    # A burst of back-to-back requests: after the one run of slack, the cap spaces runs at 1 / rate_hz.
    now, started = 10.0, []
    for _ in range(6):
        now += cap.delay(now)
        started.append(now)
        cap.take(now)
    assert started[1] == pytest.approx(started[0]) and np.diff(started[1:]) == pytest.approx([0.1] * 4)
    with pytest.raises(ValueError):
        RateCap(rate_hz=10.0, burst=0.5)


def test_worker_runs_on_notify_coalesces_and_caps_the_rate():
    starts: list[float] = []
    release = threading.Event()

    def job() -> bool:
        starts.append(time.monotonic())
        release.wait(5.0)
        return True

    worker = NewInputWorker(job, rate_hz=20.0, on_error=pytest.fail)
    worker.start()
    try:
        time.sleep(0.05)
        assert starts == []  # nothing before the first notification
        worker.notify()
        _wait_for(lambda: len(starts) == 1)
        for _ in range(5):  # notifications during a run coalesce into one more run
            worker.notify()
        release.set()
        _wait_for(lambda: worker.runs == 2)
        time.sleep(0.1)
        assert len(starts) == 2 and worker.runs == 2
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.5:  # a flood of notifications: at most 20 runs per second plus the burst
            worker.notify()
            time.sleep(0.002)
        runs = worker.runs - 2
        assert 5 <= runs <= 0.5 * 20 + RATE_BURST + 1
    finally:
        worker.stop()
    assert not worker.running


def test_worker_rate_cap_ignores_idle_wakeups_and_survives_errors():
    calls: list[str] = []
    errors: list[BaseException] = []

    def job() -> bool:
        calls.append("call")
        if len(calls) <= RATE_BURST:
            raise RuntimeError("boom")
        return False  # found nothing to do: must not delay the next call

    worker = NewInputWorker(job, rate_hz=0.5, on_error=errors.append)
    worker.start()
    try:
        for k in range(int(RATE_BURST)):  # (failed) runs count against the cap: these empty the bucket
            worker.notify()
            _wait_for(lambda k=k: len(errors) == k + 1)
        t0 = time.monotonic()
        worker.notify()  # the bucket refills in 2 s: waits, and stop() interrupts the wait
        time.sleep(0.05)
        assert len(calls) == RATE_BURST
    finally:
        worker.stop()
    assert time.monotonic() - t0 < 1.0 and isinstance(errors[0], RuntimeError)
    idle = NewInputWorker(job, rate_hz=0.5, on_error=errors.append)
    idle.start()
    try:
        for k in range(3):  # jobs that return False never wait for the cap
            idle.notify()
            _wait_for(lambda k=k: len(calls) == RATE_BURST + 1 + k, timeout_s=1.0)
    finally:
        idle.stop()
    with pytest.raises(ValueError):
        NewInputWorker(job, rate_hz=0.0, on_error=errors.append)


def test_node_environment_names_the_fastdds_profile_unless_set() -> None:
    profile = Path(node_environment({})[FASTDDS_PROFILE_VARIABLE])
    assert profile.is_file() and profile.name == "fastdds.xml" and "<transport_descriptor>" in profile.read_text()
    assert node_environment({FASTDDS_PROFILE_VARIABLE: "/etc/my_profile.xml"}) == {}


def test_custom_backend_gets_its_options_or_a_clear_error(tmp_path: Path, monkeypatch, tiny_config) -> None:
    pytest.importorskip("rclpy")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent))  # test_stub_planner as a backend module
    from diffusiondrive_ros.nodes.planner_node import load_planner

    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\0")
    params = params_from_values({"backend": "test_stub_planner:OptionsStubPlanner", "model_path": str(weights),
                                 "backend_options": "{gain: 2.5}"})
    planner = load_planner(params, tiny_config)
    assert planner.model_path == str(weights) and planner.gain == 2.5
    plain = params_from_values({"backend": "test_stub_planner:StubPlanner", "model_path": str(weights)})
    with pytest.raises(ParameterError, match="model_path"):
        load_planner(plain, tiny_config)


def test_recent_problems_reports_only_what_happened_since_the_last_report() -> None:
    stats = NodeStats()
    before = stats.counters()
    assert recent_problems(before, stats.counters()) == []
    stats.record_error(non_finite=True)
    stats.record_error(non_finite=False)
    stats.record_rejected("camera_left", "truncated")
    stats.record_rejected("camera_left", "truncated")
    stats.record_skip("unsynchronised")
    stats.record_skip("missing")  # reported from the input store as a state, not here
    after = stats.counters()
    assert recent_problems(before, after) == [
        "1 planner error(s)", "1 non-finite plan(s) dropped", "unsynchronised inputs at 1 planning wake-up(s)",
        "2 rejected message(s) (camera_left:truncated x2)"]
    assert recent_problems(after, stats.counters()) == []


# -- issue 17: stamps, plausibility, accounting, cancellable configure ----------------------------------------------
def test_checked_stamp_rejects_invalid_and_future_stamps() -> None:
    assert checked_stamp(100, 500_000_000, now=100.0, max_ahead_s=0.5) == pytest.approx(100.5)
    for sec, nanosec in ((100, 1_000_000_000), (100, 4_000_000_000), (-1, 0), (0, 0)):
        with pytest.raises(RejectedInput) as err:
            checked_stamp(sec, nanosec, now=100.0, max_ahead_s=0.5)
        assert err.value.reason == "bad_stamp"
    for ahead in (0.51, 2.0, 3600.0):
        with pytest.raises(RejectedInput) as err:
            checked_stamp(100 + int(ahead), int(ahead % 1 * 1e9), now=100.0, max_ahead_s=0.5)
        assert err.value.reason == "future_stamp"


def _accounted_store(names=("a", "b"), **kwargs) -> tuple[InputStore, Counter]:
    events: Counter = Counter()
    store = InputStore(names, on_unused=lambda n, r: events.update([f"unused.{n}:{r}"]),
                       on_used=lambda n: events.update([f"used.{n}"]),
                       on_expired_frame=lambda: events.update(["expired_frames"]), **kwargs)
    return store, events


def test_a_stored_message_ahead_of_the_clock_gives_way_to_a_fresh_one() -> None:
    store, events = _accounted_store(stale_after_s=0.5)
    store.put("a", 10.0, "a0", now=10.0)
    assert store.put("a", 10.4, "ahead", now=10.01) == "append"  # within the tolerance: stored
    assert store.admission("a", 10.05, now=10.05) == "evict_ahead"
    assert store.put("a", 10.05, "a1", now=10.05) == "evict_ahead"
    assert store.newest("a") == Stamped(10.05, "a1") and events["unused.a:evicted_ahead"] == 1
    store.put("a", 10.2, "ahead again", now=10.1)
    with pytest.raises(OutOfOrderError):  # a stale message does not evict anything
        store.put("a", 9.0, "old", now=10.1)
    with pytest.raises(OutOfOrderError):  # nor does any message once the clock has passed the stored stamp
        store.put("a", 10.15, "late", now=10.25)
    with pytest.raises(OutOfOrderError):  # without a clock: the plain order check
        store.put("a", 10.1, "x")


def test_store_accounts_for_every_message() -> None:
    store, events = _accounted_store(names=("a", "b", "c"), tolerance_s=0.05)
    for stamp in (1.0, 1.1, 1.2):  # three complete sets, one selection: 1.0 and 1.1 are superseded (dropped frames)
        _fill(store, stamp)
    sel = store.select(1.25, 0.05, 1.0)
    assert sel.status == "ready" and sel.stamp == pytest.approx(1.2) and sel.superseded == 2
    store.put("a", 1.3, "a")  # an incomplete set: c's 1.4 is outside the tolerance
    store.put("b", 1.3, "b")
    store.put("c", 1.4, "c")
    assert store.select(1.4, 0.05, 1.0).status == "unsynchronised"
    store.put("c", 1.5, "c")
    _fill(store, 1.6)
    sel = store.select(1.6, 0.05, 1.0)
    assert sel.status == "ready" and sel.stamp == pytest.approx(1.6) and sel.superseded == 0
    store.clear()
    received = {"a": 5, "b": 5, "c": 6}
    for name, count in received.items():
        accounted = events[f"used.{name}"] + sum(n for k, n in events.items() if k.startswith(f"unused.{name}:"))
        assert accounted == count, (name, events)
    assert events["used.a"] == 2 and events["unused.a:superseded"] == 2 and events["unused.a:incomplete"] == 1
    assert events["unused.c:incomplete"] == 2, events


def test_store_counts_complete_sets_pushed_out_of_its_history_as_dropped_frames() -> None:
    store, events = _accounted_store(history=2)
    for k in range(5):
        _fill(store, float(k))
    assert events["expired_frames"] == 3 and events["unused.a:superseded"] == 3
    store.put("a", 10.0, "a")  # 'a' runs ahead alone: it pushes out 3 and 4, which had complete sets ...
    store.put("a", 11.0, "a")
    assert events["unused.a:superseded"] == 5 and events["unused.a:incomplete"] == 0
    store.put("a", 12.0, "a")  # ... and then 10, which had none
    assert events["unused.a:incomplete"] == 1
    assert sum(n for k, n in events.items() if k.startswith("unused.b:")) == 3  # b's 0-2, pushed out


def test_acceleration_stays_finite_bounded_and_recovers_from_single_bad_samples() -> None:
    est = AccelerationEstimator(alpha=1.0, max_accel=30.0)
    est.update(0.0, 10.0, 0.0)
    est.update(0.1, 10.5, 0.0)
    for bad in (1.7e308, -1.7e308, 1e39, 60.0):  # each rejected, the estimate untouched
        with pytest.raises(RejectedInput, match="implausible_accel"):
            est.update(0.2, bad, 0.0)
    assert est.update(0.3, 11.0, 0.0) == pytest.approx((2.5, 0.0))  # next good sample: from the last accepted one
    with pytest.raises(RejectedInput):
        est.update(0.4, 40.0, 0.0)  # a real jump: rejected once...
    assert est.update(0.5, 40.2, 0.0) == (0.0, 0.0)  # ...confirmed by the next sample, the estimate restarts
    assert est.update(0.6, 40.4, 0.0) == pytest.approx((2.0, 0.0))
    rng = np.random.default_rng(0)
    t = 1.0
    for _ in range(2000):  # whatever arrives, the estimate is finite and within the bound
        t += float(rng.choice([1e-9, 0.02, 0.5]))
        v = float(rng.choice([0.0, 5.0, 1e6, 1.7e308, -1.7e308, 1e-300]))
        with contextlib.suppress(RejectedInput):
            ax, ay = est.update(t, v, -v)
            assert np.isfinite([ax, ay]).all() and np.hypot(ax, ay) <= 30.0 + 1e-9


def test_plausibility_bounds() -> None:
    bounds = Bounds(max_speed_mps=70.0, max_yaw_rate_radps=3.0, max_point_range_m=500.0)
    check_twist(-20.0, 1.0, -2.9, bounds)
    for twist, reason in (((1e39, 0.0, 0.0), "implausible_speed"), ((50.0, 50.0, 0.0), "implausible_speed"),
                          ((3.0, 0.0, 50.0), "implausible_yaw_rate"), ((float("nan"), 0.0, 0.0), "non_finite"),
                          ((0.0, 0.0, float("inf")), "non_finite")):
        with pytest.raises(RejectedInput) as err:
            check_twist(*twist, bounds)
        assert err.value.reason == reason
    xyz = np.array([[1, 2, 3], [np.nan, 0, 0], [0, np.inf, 0], [3e38, 0, 0], [0, 0, -501], [4, 5, 6]], np.float32)
    filtered = filter_points(xyz, 500.0)
    np.testing.assert_array_equal(filtered.points, xyz[[0, 5]])
    assert (filtered.non_finite, filtered.out_of_range) == (2, 2)
    fine = xyz[[0, 5]]
    assert filter_points(fine, 500.0).points is fine  # the common case: no copy
    assert filter_points(np.zeros((0, 3), np.float32), 1.0).points.shape == (0, 3)


def test_publication_gaps_count_messages_that_never_arrived() -> None:
    gaps = PublicationGaps(max_writers=2)
    assert [gaps.update("w1", s) for s in (1, 2, 5, 6)] == [0, 0, 2, 0]
    assert gaps.update("w2", 10) == 0 and gaps.update("w2", 12) == 1
    assert gaps.update("w1", 3) == 0 and gaps.update("w1", 4) == 0  # a restarted writer starts over
    gaps.update("w3", 1)  # the least recently seen writer (w2) is forgotten
    assert gaps.update("w2", 20) == 0


def test_command_line_overrides_and_their_types() -> None:
    argv = ["node", "--ros-args", "--params-file", "p.yaml", "-p", "rate_hz:=fast", "-r", "a:=b",
            "--param", "diffusiondrive_planner:seed:=abc", "-p", "other_node:warmup_runs:=x",
            "-p", "backend:=onnxruntime",
            "--", "-p", "qos_depth:=none", "--ros-args", "-p", "rate_hz:=30"]
    overrides = command_line_overrides(argv)
    assert overrides == {"rate_hz": 30, "seed": "abc", "backend": "onnxruntime"}
    errors = override_type_errors({**overrides, "rate_hz": "fast", "unknown": 1})
    assert set(errors) == {"rate_hz", "seed"}
    assert "'seed'" in errors["seed"] and "expected int" in errors["seed"] and "-p seed:=abc" in errors["seed"]
    assert command_line_overrides(["x", "-p", "seed:=abc"]) == {}  # outside --ros-args


def test_recent_problems_names_losses_and_implausible_points() -> None:
    stats = NodeStats()
    before = stats.counters()
    stats.count("lost.camera_left", 2)
    stats.count("dropped_points.lidar:non_finite", 100)  # no-return points are normal: not a problem
    stats.count("dropped_points.lidar:implausible_range", 3)
    stats.count("unused.lidar:superseded")
    assert recent_problems(before, stats.counters()) == [
        "2 message(s) lost in transport (camera_left x2)",
        "3 implausible LiDAR point(s) dropped (lidar:implausible_range x3)"]
    summary = stats.summary(0.0)
    assert summary["lost.camera_left"] == "2" and summary["unused.lidar:superseded"] == "1"


def test_run_cancellable_returns_raises_or_gives_up_at_once() -> None:
    assert run_cancellable(lambda cancel: 42, lambda: False) == 42
    with pytest.raises(KeyError):
        run_cancellable(lambda cancel: {}["missing"], lambda: False)
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        run_cancellable(lambda cancel: release.wait(30.0), lambda: time.monotonic() - started > 0.2, poll_s=0.01)
    assert time.monotonic() - started < 1.0
    assert abandoned_jobs()  # still inside its "native call"
    release.set()
    _wait_for(lambda: not abandoned_jobs())


def test_load_model_names_the_failing_step(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("rclpy")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent))
    from diffusiondrive_ros.nodes.planner_node import ConfigureError, load_model

    folder = tmp_path / "onnx_only"
    folder.mkdir()
    (folder / "planner.onnx").write_bytes(b"")
    params = params_from_values({"backend": "onnxruntime", "model_path": str(folder)})
    with pytest.raises(ConfigureError, match="is not a model directory: it has no model.yaml .*planner.onnx"):
        load_model(params, threading.Event())
    (folder / "model.yaml").write_text("name: tiny\nbogus: [1\n")
    with pytest.raises(ConfigureError, match=r"model config .*model.yaml: ParserError: .*line \d"):
        load_model(params, threading.Event())
    slow = params_from_values({"backend": "test_stub_planner:SlowStubPlanner", "warmup_runs": 3,
                               "backend_options": "{plan_s: 0.01}"})
    loaded = load_model(slow, threading.Event())
    assert loaded.identity == {"model_path": "", "model_config": "tiny", "model_sha256": ""}
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        load_model(slow, cancel)


def test_heap_is_trimmed_once_after_the_last_oversized_input() -> None:
    from diffusiondrive_ros.nodes.memory import LARGE_INPUT_BYTES, LargeInputTrimmer, release_free_heap

    calls = []
    trimmer = LargeInputTrimmer(delay_s=2.0, release=lambda: calls.append(1) or True)
    trimmer.saw(LARGE_INPUT_BYTES - 1, 0.0)
    assert not trimmer.poll(10.0)  # small inputs never trim
    trimmer.saw(LARGE_INPUT_BYTES, 1.0)
    trimmer.saw(LARGE_INPUT_BYTES, 2.0)  # the last oversized input restarts the delay
    assert not trimmer.poll(3.5)
    assert trimmer.poll(4.0) and not trimmer.poll(9.0)
    assert calls == [1] and trimmer.trims == 1
    assert release_free_heap() is True  # glibc on these machines
