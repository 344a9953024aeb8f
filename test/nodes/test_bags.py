"""rosbag2 MCAP bags: synthesised sensor bags, CDR restamping, live recording, and a replay through the real node.

The node test exports the tiny model to ONNX and runs the node on ONNX Runtime (the deployment path) in its own
process, started from the shared command-line description with the helpers of ros_harness.py.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 Python wheels (rclpy) are not installed")

from lifecycle_msgs.msg import Transition  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from ros_harness import NodeProcess, Probe, domain_id  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402
from std_msgs.msg import String, UInt8  # noqa: E402

from diffusiondrive_ros.commands import bag as bag_command  # noqa: E402
from diffusiondrive_ros.contract import NUM_POSES  # noqa: E402
from diffusiondrive_ros.data.synthetic import synthetic_frames  # noqa: E402
from diffusiondrive_ros.nodes import bags, converters  # noqa: E402
from diffusiondrive_ros.nodes.launch_spec import NodeLaunch  # noqa: E402
from diffusiondrive_ros.nodes.params import NODE_NAME  # noqa: E402
from diffusiondrive_ros.nodes.topics import DIAGNOSTICS_TOPIC  # noqa: E402

pytestmark = pytest.mark.ros

CAMERA_SIZE = (480, 270)  # 390 KB images: the size band the default 512 KiB Fast DDS shared-memory segment drops
FRAMES, RATE_HZ = 20, 10.0
MIN_PLANNED = 16  # best-effort sensors on 2 shared, overloaded cores: a few frames may be lost in transport


@pytest.fixture(scope="module", autouse=True)
def large_shared_memory_segment(fastdds_profile):
    """The shipped Fast DDS profile, for this process (if its DDS is not yet loaded) and the node processes."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", str(fastdds_profile))
        yield


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bag_command.add_arguments(parser)
    return parser.parse_args(argv)


# -- topic names and CDR --------------------------------------------------------------------------------------------
def test_topic_names_follow_the_node_and_its_remaps():
    topics = bags.node_topics()
    assert topics["camera_front"] == f"/{NODE_NAME}/input/camera_front"
    assert topics["trajectory"] == f"/{NODE_NAME}/output/trajectory"
    topics = bags.node_topics("planner", "/car1", {"lidar": "/sensing/points", "odometry": "odom"})
    assert topics["lidar"] == "/sensing/points"
    assert topics["odometry"] == "/car1/odom"
    assert topics["command"] == "/car1/planner/input/command"
    with pytest.raises(bags.BagError, match="unknown topic"):
        bags.node_topics(remaps={"radar": "/r"})
    assert bags.parse_topic_overrides(["lidar=/a"]) == {"lidar": "/a"}
    with pytest.raises(bags.BagError):
        bags.parse_topic_overrides(["lidar"])
    assert bags.parse_size("480x270") == (480, 270)
    for bad in ("480", "0x5", "ax b"):
        with pytest.raises(bags.BagError):
            bags.parse_size(bad)


def test_restamp_rewrites_only_the_header_stamp():
    rng = np.random.default_rng(0)
    msg = converters.xyz_to_cloud_msg(rng.normal(size=(50, 3)), 12.25, "lidar", intensity=True)
    data = serialize_message(msg)
    assert bags.header_stamp_ns(data) == 12_250_000_000
    new = bags.restamp_cdr(data, 1_700_000_000_123_456_789)
    back = deserialize_message(new, PointCloud2)
    assert (back.header.stamp.sec, back.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    np.testing.assert_array_equal(converters.cloud_to_xyz(back), converters.cloud_to_xyz(msg))
    assert len(new) == len(data) and new[12:] == data[12:]
    assert bags.has_leading_header("sensor_msgs/msg/Image") and bags.has_leading_header("nav_msgs/msg/Odometry")
    assert not bags.has_leading_header("std_msgs/msg/UInt8")
    with pytest.raises(bags.BagError):
        bags.restamp_cdr(b"\x07\x07\x00\x00" + bytes(8), 1)
    with pytest.raises(bags.BagError):
        bags.message_class("sensor_msgs/Image")


def test_synth_bag_holds_the_frames_as_the_node_reads_them(tmp_path, tiny_config):
    out = tmp_path / "bag"
    assert bag_command.run(_parse(["synth", "--out", str(out), "--frames", "4", "--rate", "10",
                                   "--camera-size", "96x54", "--seed", "3"])) == 0
    topics = bags.node_topics()
    types = bags.bag_topics(out)
    assert types[topics["camera_front"]] == ("sensor_msgs/msg/Image", 4)
    assert types[topics["lidar"]] == ("sensor_msgs/msg/PointCloud2", 4)
    assert types[topics["odometry"]] == ("nav_msgs/msg/Odometry", 4)
    assert types[topics["command"]] == ("std_msgs/msg/UInt8", 1)  # written once: it never changes
    config = tiny_config.with_source_camera_size((96, 54))
    frames = list(synthetic_frames(config, 4, 10.0, seed=3))
    images = bags.read_messages(out, topics["camera_left"])
    clouds = bags.read_messages(out, topics["lidar"])
    for frame, (log_ns, image), (_, cloud) in zip(frames, images, clouds):
        assert log_ns == round((1.0 + frame.stamp) * 1e9)
        assert converters.stamp_to_seconds(image.header.stamp) == pytest.approx(1.0 + frame.stamp, abs=1e-9)
        np.testing.assert_array_equal(converters.image_to_rgb(image), frame.cameras[0])
        np.testing.assert_allclose(converters.cloud_to_xyz(cloud), frame.lidar_points, atol=1e-6)
    command = bags.read_messages(out, topics["command"])[0][1]
    assert isinstance(command, UInt8) and command.data == frames[0].command_index()
    with pytest.raises(bags.BagError, match="exists"):
        bag_command.run(_parse(["synth", "--out", str(out), "--frames", "1", "--camera-size", "96x54"]))


def test_compressed_transport_and_remapped_topics(tmp_path):
    out = tmp_path / "bag"
    bag_command.run(_parse(["synth", "--out", str(out), "--frames", "2", "--camera-size", "64x36",
                            "--camera-transport", "compressed", "--topic", "camera_front=/cam/front"]))
    types = bags.bag_topics(out)
    assert types["/cam/front"] == ("sensor_msgs/msg/CompressedImage", 2)
    image = bags.read_messages(out, "/cam/front")[0][1]
    assert converters.compressed_image_to_rgb(image).shape == (36, 64, 3)


# -- live recording ---------------------------------------------------------------------------------------------------
def test_record_discovers_types_and_writes_what_was_published(tmp_path, monkeypatch):
    topic = f"/bag_record_test_{domain_id()}"
    out = tmp_path / "recorded"
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id())
    node = rclpy.create_node("bag_record_test_publisher", context=context)
    publisher = node.create_publisher(String, topic, 10)
    sent, stop = [], threading.Event()

    def publish() -> None:
        while not stop.is_set():
            if publisher.get_subscription_count() > 0:
                publisher.publish(String(data=f"message {len(sent)}"))
                sent.append(1)
            time.sleep(0.02)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id()))
    try:
        assert bag_command.run(_parse(["record", "--topics", topic, "--out", str(out), "--duration", "4"])) == 0
    finally:
        stop.set()
        thread.join()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    messages = bags.read_messages(out, topic)
    assert bags.bag_topics(out)[topic][0] == "std_msgs/msg/String"
    assert len(sent) >= 5 and len(messages) >= 5, (len(sent), len(messages))
    texts = [m.data for _, m in messages]
    assert texts[-1].startswith("message ") and len(set(texts)) == len(texts)


# -- replay through the node ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory, tiny_config):
    from diffusiondrive_ros.model.diffusiondrive import build_model
    from diffusiondrive_ros.runtime.export import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(build_model(tiny_config, seed=0).eval(), tiny_config, path)
    return path


@pytest.mark.slow
def test_replayed_bag_gives_one_path_per_planned_frame(ros_context, tiny_onnx, tmp_path):
    bag_dir, plans_dir = tmp_path / "drive", tmp_path / "plans"
    bag_command.run(_parse(["synth", "--out", str(bag_dir), "--frames", str(FRAMES), "--rate", str(RATE_HZ),
                            "--camera-size", "x".join(map(str, CAMERA_SIZE))]))
    launch = NodeLaunch(overrides={"backend": "onnxruntime", "model_path": str(tiny_onnx), "model_config": "tiny",
                                   "backend_options": "{providers: [CPUExecutionProvider], intra_op_threads: 1}",
                                   "stale_after_s": 1.0})
    node = NodeProcess(launch, tmp_path / "node.log")
    probe = Probe(ros_context)
    try:
        assert probe.transition(Transition.TRANSITION_CONFIGURE), node.log()[-3000:]
        assert probe.transition(Transition.TRANSITION_ACTIVATE)
        topics = bags.node_topics()
        with bag_command.ros_node("bag_replay_test", domain_id=domain_id()) as replayer:
            recorder = bags.TopicRecorder(replayer, plans_dir, bags.output_topics(topics, DIAGNOSTICS_TOPIC))
            assert recorder.wait_for_publishers(30.0) == []
            report = bags.replay_bag(replayer, bag_dir, wait_for_subscribers_s=30.0)
            deadline = time.monotonic() + 3.0  # the last frames' plans (raw candidates follow each Path)
            while time.monotonic() < deadline and (
                    recorder.counts[topics["trajectory"]] < FRAMES
                    or recorder.counts[topics["candidates_raw"]] < recorder.counts[topics["trajectory"]]):
                time.sleep(0.05)
            recorded = recorder.close()
        assert node.alive(), node.log()[-3000:]
    finally:
        probe.close()
        node.stop()
    assert report.published[topics["camera_front"]] == FRAMES
    assert report.max_lag_s < 0.5, report
    frame_stamps = np.array(report.stamps_ns[topics["odometry"]]) * 1e-9
    for name in ("camera_left", "camera_front", "camera_right", "lidar"):  # the shift keeps sensors in sync
        np.testing.assert_array_equal(report.stamps_ns[topics[name]], report.stamps_ns[topics["odometry"]])
    np.testing.assert_allclose(np.diff(frame_stamps), 1.0 / RATE_HZ, atol=1e-6)
    assert abs(frame_stamps[0] - time.time()) < 120.0  # restamped to the wall clock

    paths = bags.read_messages(plans_dir, topics["trajectory"])
    path_stamps = np.array([converters.stamp_to_seconds(p.header.stamp) for _, p in paths])
    assert len(path_stamps) == recorded[topics["trajectory"]]
    # every Path belongs to exactly one replayed frame (float seconds in the node: sub-microsecond rounding)
    nearest = np.abs(path_stamps[:, None] - frame_stamps[None, :]).argmin(axis=1)
    np.testing.assert_allclose(path_stamps, frame_stamps[nearest], atol=1e-6)
    assert len(set(nearest.tolist())) == len(nearest), "a frame was planned twice"
    diagnostics = {kv.key: kv.value for kv in bags.read_messages(plans_dir, DIAGNOSTICS_TOPIC)[-1][1].status[0].values}
    assert len(paths) >= MIN_PLANNED, (f"only {len(paths)} of {FRAMES} frames planned; diagnostics {diagnostics}\n"
                                      f"{node.log_path.read_text()}")
    assert all(len(p.poses) == NUM_POSES and np.isfinite(converters.path_to_trajectory(p)[0]).all()
               for _, p in paths)
    assert recorded[topics["candidates_raw"]] == len(paths)
    assert recorded[DIAGNOSTICS_TOPIC] >= 1


@pytest.mark.sim
@pytest.mark.slow
def test_synth_from_the_simulator(tmp_path):  # marked sim: skipped by test/conftest.py without MetaDrive
    out = tmp_path / "sim_bag"
    bag_command.run(_parse(["synth", "--out", str(out), "--frames", "2", "--rate", "10", "--source", "sim",
                            "--camera-size", "160x90"]))
    topics = bags.node_topics()
    images = bags.read_messages(out, topics["camera_front"])
    assert len(images) == 2 and converters.image_to_rgb(images[0][1]).shape == (90, 160, 3)
    stamps = [converters.stamp_to_seconds(m.header.stamp) for _, m in images]
    assert stamps[1] - stamps[0] == pytest.approx(0.1, abs=1e-6)
    assert len(converters.cloud_to_xyz(bags.read_messages(out, topics["lidar"])[0][1])) > 100
