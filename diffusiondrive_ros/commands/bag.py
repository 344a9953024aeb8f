"""``diffusiondrive bag synth|replay|record``: rosbag2 MCAP bags of the planner node's topics.

    diffusiondrive bag synth --out /tmp/drive --frames 100 --rate 10 --source sim
    diffusiondrive bag replay /tmp/drive --record-out /tmp/drive_plans
    diffusiondrive bag record --topics /diffusiondrive_planner/output/trajectory --out /tmp/plans --duration 30
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator

from tqdm import tqdm

from ..nodes.params import NODE_NAME
from ..nodes.topics import DIAGNOSTICS_TOPIC

FRAME_SOURCES = ("synthetic", "sim")


def frame_source(name: str) -> Callable[..., Iterator[object]]:
    """frames(config, count, rate_hz, seed) of a ``--source``: generated frames, or an IDM-expert drive in MetaDrive."""
    if name == "synthetic":
        from ..data.synthetic import synthetic_frames

        return synthetic_frames
    from ..sim.expert import expert_drive_frames

    return expert_drive_frames


def _add_topic_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node-name", default=NODE_NAME, help="name of the planner node whose topics are used")
    parser.add_argument("--namespace", default="", help="namespace of the planner node")
    parser.add_argument("--topic", action="append", default=[], metavar="NAME=TOPIC",
                        help="remapped topic of one node input/output, e.g. lidar=/sensing/lidar/points "
                             "(repeatable; default: the node's private topics)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..nodes.params import CAMERA_TRANSPORTS

    sub = parser.add_subparsers(dest="bag_command", metavar="ACTION", required=True)
    synth = sub.add_parser("synth", help="write a bag of the node's sensor inputs from generated or simulated data")
    synth.add_argument("--out", required=True, help="new bag folder (rosbag2, MCAP storage)")
    synth.add_argument("--frames", type=int, default=20, help="frames to write")
    synth.add_argument("--rate", type=float, default=10.0, help="frame rate [Hz] (sim: 1/rate a multiple of 0.1 s)")
    synth.add_argument("--source", choices=FRAME_SOURCES, default="synthetic",
                       help="synthetic: cheap generated frames; sim: an IDM-expert drive in MetaDrive")
    synth.add_argument("--seed", type=int, default=0, help="seed of the generator / the simulator scene")
    synth.add_argument("--config", default="tiny", help="model config giving the default camera size")
    synth.add_argument("--camera-size", help="WIDTHxHEIGHT of each camera image (default: the config's source size)")
    synth.add_argument("--camera-transport", choices=CAMERA_TRANSPORTS, default="raw",
                       help="raw: sensor_msgs/Image rgb8; compressed: sensor_msgs/CompressedImage jpeg")
    synth.add_argument("--command-type", choices=("uint8", "int32"), default="uint8",
                       help="std_msgs type of the command topic (the node's command_type parameter)")
    synth.add_argument("--start-stamp", type=float, default=1.0, help="header stamp [s] of the first frame")
    _add_topic_arguments(synth)

    replay = sub.add_parser("replay", help="publish a bag at its recorded rate; optionally record the node's outputs")
    replay.add_argument("bag", help="bag folder")
    replay.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    replay.add_argument("--keep-stamps", action="store_true",
                        help="publish the recorded header stamps (default: shift them to now, as the node drops "
                             "stale inputs)")
    replay.add_argument("--record-out", help="record the node's Path, candidates_raw and diagnostics to this bag")
    replay.add_argument("--wait", type=float, default=10.0, help="seconds to wait for subscribers before replaying")
    replay.add_argument("--delay", type=float, default=1.0,
                        help="seconds to wait after subscribers are matched (discovery is asymmetric: a best-effort "
                             "reader drops messages from a writer it has not matched yet)")
    replay.add_argument("--linger", type=float, default=1.0, help="seconds to keep recording after the last message")
    _add_topic_arguments(replay)

    record = sub.add_parser("record", help="record live topics (any message type) to an MCAP bag")
    record.add_argument("--topics", nargs="+", required=True, help="topics to record")
    record.add_argument("--out", required=True, help="new bag folder")
    record.add_argument("--duration", type=float, help="seconds to record (default: until Ctrl-C)")


def _topics(args: argparse.Namespace) -> dict[str, str]:
    from ..nodes.bags import node_topics, parse_topic_overrides

    return node_topics(args.node_name, args.namespace, parse_topic_overrides(args.topic))


@contextlib.contextmanager
def ros_node(name: str, domain_id: int | None = None) -> Iterator[object]:
    """An rclpy node of its own context (``domain_id`` None: ROS_DOMAIN_ID), spun by an executor thread."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    node = rclpy.create_node(f"{name}_{os.getpid()}", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        yield node
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        thread.join(5.0)


def run_synth(args: argparse.Namespace) -> int:
    from ..model.config import load_config
    from ..nodes import bags

    if args.frames < 1 or args.rate <= 0:
        raise bags.BagError("--frames must be >= 1 and --rate > 0")
    config = load_config(args.config).with_source_camera_size(
        bags.parse_size(args.camera_size) if args.camera_size else None)
    make_frames = frame_source(args.source)
    frames = make_frames(config, args.frames, args.rate, args.seed)
    with tqdm(total=args.frames, desc="bag synth", unit="frame") as bar:
        summary = bags.write_sensor_bag(args.out, frames, _topics(args), args.start_stamp, args.camera_transport,
                                        args.command_type, progress=lambda n: bar.update(n - bar.n))
    print(f"wrote {len(summary.frame_stamps)} frames ({summary.duration_s:.2f} s) to {summary.path}")
    for topic, count in summary.counts.items():
        print(f"  {count:6d}  {topic}")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from ..nodes import bags

    total = sum(count for _, count in bags.bag_topics(args.bag).values())
    with ros_node("diffusiondrive_bag_replay") as node:
        recorder = None
        if args.record_out:
            recorder = bags.TopicRecorder(node, args.record_out, bags.output_topics(_topics(args), DIAGNOSTICS_TOPIC))
            unmatched = recorder.wait_for_publishers(args.wait)
            if unmatched:
                print(f"warning: no publisher yet on {unmatched}; recording anyway")
        try:
            with tqdm(total=total, desc="bag replay", unit="msg") as bar:
                report = bags.replay_bag(node, args.bag, args.rate, restamp=not args.keep_stamps,
                                         wait_for_subscribers_s=args.wait,
                                         start_delay_s=args.delay, progress=lambda n: bar.update(n - bar.n))
            if recorder is not None:
                time.sleep(args.linger)
        finally:
            if recorder is not None:
                report_recorded = recorder.close()
    print(f"replayed {sum(report.published.values())} messages in {report.wall_s:.2f} s "
          f"(max lag behind schedule {report.max_lag_s * 1e3:.1f} ms)")
    if recorder is not None:
        for topic, count in report_recorded.items():
            print(f"  recorded {count:6d}  {topic}")
    return 0


def run_record(args: argparse.Namespace) -> int:
    from ..nodes import bags

    with ros_node("diffusiondrive_bag_record") as node:
        recorder = bags.TopicRecorder(node, args.out, dict.fromkeys(args.topics))
        end = None if args.duration is None else time.monotonic() + args.duration
        try:
            while end is None or time.monotonic() < end:
                if recorder.pending:
                    recorder.discover()
                time.sleep(0.1)
        except KeyboardInterrupt:
            pass
        finally:
            counts = recorder.close()
    for topic in args.topics:
        print(f"  {counts.get(topic, 0):6d}  {topic}" + ("" if topic in counts else "  (never seen)"))
    return 0


def run(args: argparse.Namespace) -> int:
    actions = {"synth": run_synth, "replay": run_replay, "record": run_record}
    if args.bag_command not in actions:
        raise ValueError(f"unknown bag action {args.bag_command!r}")
    return actions[args.bag_command](args)
