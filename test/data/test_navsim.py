"""The NAVSIM/OpenScene reader on a tiny hand-made log: poses, future trajectory, agents, sensors, PCD, conversion."""

from __future__ import annotations

import pickle
import struct

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from diffusiondrive_ros.data import navsim
from diffusiondrive_ros.data.dataset import DrivingDataset
from diffusiondrive_ros.data.pcd import PcdError, lzf_decompress, read_pcd, write_pcd
from diffusiondrive_ros.data.synthetic import arc_poses
from diffusiondrive_ros.geometry import ego_to_world
from diffusiondrive_ros.runtime.preprocess import preprocess_frame

N_FRAMES = 12
SPEED, CURVATURE = 8.0, 0.02
START = np.array([100.0, -50.0, 0.7])  # global x, y, yaw of frame 0
GT_BOXES = np.array([  # ego frame: x, y, z, length, width, height, yaw
    [12.0, 3.0, 0.8, 4.5, 2.0, 1.6, 0.3],   # vehicle, near
    [-20.0, -6.0, 0.8, 5.0, 2.1, 1.7, -1.2],  # vehicle, farther
    [50.0, 0.0, 0.8, 4.0, 2.0, 1.5, 0.0],   # vehicle outside the 32 m square
    [6.0, -4.0, 0.9, 0.6, 0.6, 1.8, 0.0],   # pedestrian
    [8.0, 10.0, 0.4, 0.5, 0.5, 0.8, 0.0],   # traffic cone
], dtype=np.float32)
GT_NAMES = ["vehicle", "vehicle", "vehicle", "pedestrian", "traffic_cone"]


def yaw_quaternion(yaw: float) -> list[float]:
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def make_log(root, n_frames=N_FRAMES, drop_frame=None):
    """A tiny OpenScene log: constant-curvature drive, 270x480 jpgs, binary PCD sweeps, 5 annotated boxes."""
    blobs = root / "sensor_blobs"
    (blobs / "log0" / "lidar").mkdir(parents=True, exist_ok=True)
    global_poses = ego_to_world(arc_poses(SPEED, CURVATURE, 0.5 * np.arange(n_frames)), START)
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n_frames):
        if i == drop_frame:
            continue
        cams = {}
        for key, color in zip(navsim.CAMERA_KEYS, [(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
            (blobs / "log0" / key).mkdir(exist_ok=True)
            rel = f"log0/{key}/{i:03d}.jpg"
            image = np.zeros((270, 480, 3), np.uint8)
            image[:] = color  # RGB
            cv2.imwrite(str(blobs / rel), image[:, :, ::-1])
            cams[key] = {"data_path": rel, "sensor2lidar_rotation": np.eye(3), "sensor2lidar_translation": np.zeros(3),
                         "cam_intrinsic": np.eye(3), "distortion": np.zeros(5)}
        points = np.column_stack([rng.uniform(-30, 30, (500, 2)), rng.uniform(0.0, 3.0, 500), rng.random((500, 3))])
        write_pcd(blobs / f"log0/lidar/{i:03d}.pcd", points)
        x, y, yaw = global_poses[i]
        frames.append({
            "token": f"tok{i}", "timestamp": 1_700_000_000_000_000 + i * 500_000, "log_name": "log0",
            "scene_token": "scene0", "map_location": "us-nv-las-vegas-strip",
            "ego2global_translation": np.array([x, y, 0.5]), "ego2global_rotation": np.array(yaw_quaternion(yaw)),
            "ego_dynamic_state": [SPEED, 0.1, 0.2, SPEED**2 * CURVATURE], "driving_command": np.array([1, 0, 0, 0]),
            "cams": cams, "lidar_path": f"log0/lidar/{i:03d}.pcd",
            "anns": {"gt_boxes": GT_BOXES.copy(), "gt_names": list(GT_NAMES), "gt_velocity_3d": np.zeros((5, 3)),
                     "instance_tokens": [f"i{j}" for j in range(5)], "track_tokens": [f"t{j}" for j in range(5)]},
        })
    (root / "meta_datas").mkdir(exist_ok=True)
    with open(root / "meta_datas" / "log0.pkl", "wb") as f:
        pickle.dump(frames, f)
    return root / "meta_datas", blobs


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    return make_log(tmp_path_factory.mktemp("navsim"))


def test_quaternion_yaw_matches_scipy_with_pitch_and_roll():
    for yaw, pitch, roll in [(0.7, 0.05, -0.03), (-2.9, 0.1, 0.2), (3.1, -0.02, 0.0)]:
        x, y, z, w = Rotation.from_euler("ZYX", [yaw, pitch, roll]).as_quat()
        assert navsim.quaternion_yaw([w, x, y, z]) == pytest.approx(yaw, abs=1e-9)


def test_samples_have_the_right_future_agents_and_sensors(log, tiny_config):
    meta_dir, blobs = log
    samples = list(navsim.iter_navsim_samples(meta_dir, blobs, tiny_config))
    assert len(samples) == N_FRAMES - 8  # frames 0..3 have a full 4 s future
    expected_future = arc_poses(SPEED, CURVATURE, 0.5 * np.arange(1, 9))  # the same arc from every frame
    for s in samples:
        np.testing.assert_allclose(s.expert_future, expected_future, atol=1e-4)
    s = samples[2]
    assert s.token == "tok2" and s.scene_id == "log0" and s.t == pytest.approx(1.0)
    np.testing.assert_allclose(s.agent_boxes, GT_BOXES[:, [0, 1, 6, 3, 4]])
    assert s.agent_kinds.tolist() == [0, 0, 0, 1, 3]
    frame = s.frame
    assert frame.command_index() == 0 and frame.velocity == (SPEED, 0.1)
    assert frame.acceleration == pytest.approx((0.2, SPEED**2 * CURVATURE))
    for image, channel in zip(frame.cameras, range(3)):  # left red, front green, right blue: RGB order kept
        assert image.shape == (270, 480, 3) and image[..., channel].min() > 240
    points, _ = read_pcd(blobs / "log0/lidar/002.pcd")
    np.testing.assert_array_equal(frame.lidar_points, points[:, :3])
    inputs = preprocess_frame(frame, tiny_config)
    assert inputs.camera.shape == (1, 3, 64, 256) and inputs.status[0, 0] == 1.0


def test_bev_semantic_has_box_classes_in_navsim_layout(log, tiny_config):
    meta_dir, blobs = log
    bev = next(navsim.iter_navsim_samples(meta_dir, blobs, tiny_config)).bev_semantic
    h, w = tiny_config.aux_heads.bev_semantic_size
    r = tiny_config.lidar.range_m
    px = lambda x, y: (int(x * h / r), int((y + r) * w / (2 * r)))  # noqa: E731 - row, col of an ego (x, y)
    assert bev[px(12, 3)] == 5 and bev[px(6, -4)] == 6 and bev[px(8, 10)] == 4
    assert bev[px(20, -20)] == 0
    assert set(np.unique(bev)) == {0, 4, 5, 6}  # the vehicle behind the ego (x < 0) is outside the map


def test_irregular_future_windows_are_skipped(tmp_path, tiny_config):
    meta_dir, blobs = make_log(tmp_path, drop_frame=9)
    indices = [s.token for s in navsim.iter_navsim_samples(meta_dir, blobs, tiny_config)]
    assert indices == ["tok0"]  # frames 1.. would need frame 9 inside their 4 s window


def test_convert_logs_writes_a_readable_dataset(log, tmp_path, tiny_config):
    meta_dir, blobs = log
    manifest = navsim.convert_logs(meta_dir, blobs, tmp_path / "ds", tiny_config, stride=2)
    assert manifest["num_samples"] == 2
    ds = DrivingDataset(tmp_path / "ds", config=tiny_config)
    item = ds[1]
    np.testing.assert_allclose(item["trajectory"].numpy(), arc_poses(SPEED, CURVATURE, 0.5 * np.arange(1, 9)),
                               atol=1e-4)
    # Vehicles only, inside the 32 m square, nearest first.
    assert item["agent_labels"].tolist()[:3] == [1.0, 1.0, 0.0]
    np.testing.assert_allclose(item["agent_states"][:2].numpy(), GT_BOXES[[0, 1]][:, [0, 1, 6, 3, 4]])


def test_pcd_roundtrip_ascii_binary_and_lzf(tmp_path):
    rng = np.random.default_rng(3)
    points = rng.normal(size=(50, 6)).astype(np.float32)
    for binary in (True, False):
        path = tmp_path / f"p{binary}.pcd"
        write_pcd(path, points, binary=binary)
        loaded, fields = read_pcd(path)
        assert fields == ("x", "y", "z", "intensity", "ring", "lidar_info")
        np.testing.assert_allclose(loaded, points, rtol=1e-6)
    with pytest.raises(ValueError, match="expected"):
        write_pcd(tmp_path / "bad.pcd", points[:, :3])
    # binary_compressed: column-major float32 fields, LZF-coded (here as literal runs of <= 32 bytes).
    raw = np.ascontiguousarray(points.T).astype("<f4").tobytes()
    coded = b"".join(bytes([len(chunk) - 1]) + chunk for chunk in (raw[i:i + 32] for i in range(0, len(raw), 32)))
    header = (b"VERSION 0.7\nFIELDS x y z intensity ring lidar_info\nSIZE 4 4 4 4 4 4\nTYPE F F F F F F\n"
              b"COUNT 1 1 1 1 1 1\nWIDTH 50\nHEIGHT 1\nPOINTS 50\nDATA binary_compressed\n")
    loaded, _ = read_pcd(header + struct.pack("<II", len(coded), len(raw)) + coded)
    np.testing.assert_array_equal(loaded, points)


def test_lzf_back_references_and_errors():
    # "abc" literal, then a back-reference of length 6 at distance 3 -> "abcabcabc" (overlapping copy).
    assert lzf_decompress(bytes([2]) + b"abc" + bytes([(4 << 5) | 0, 2]), 9) == b"abcabcabc"
    # A long reference: length field 7 plus an extra byte.
    assert lzf_decompress(bytes([0]) + b"z" + bytes([7 << 5, 3, 0]), 13) == b"z" * 13
    with pytest.raises(PcdError, match="decoded to"):
        lzf_decompress(bytes([2]) + b"abc", 4)
    with pytest.raises(PcdError, match="before the start"):
        lzf_decompress(bytes([1 << 5, 5]), 3)
    with pytest.raises(PcdError, match="DATA"):
        read_pcd(b"VERSION 0.7\nFIELDS x\n")


def test_format_errors(tmp_path, tiny_config):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"not": "a list"}))
    with pytest.raises(navsim.NavsimFormatError, match="list of frame dicts"):
        navsim.load_log(bad)
    with pytest.raises(FileNotFoundError, match="pkl"):
        next(navsim.iter_navsim_samples(tmp_path / "empty", tmp_path, tiny_config))
    with pytest.raises(navsim.NavsimFormatError, match="driving_command"):
        navsim.command_index([1, 0])
    assert navsim.command_index([0, 0, 0, 0]) == 3 and navsim.command_index([0, 0, 1, 0]) == 2
