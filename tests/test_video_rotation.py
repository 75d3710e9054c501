"""Rotated phone videos: frames are encoded sideways and the container's display matrix (the mp4 `tkhd` matrix)
says how a player turns them. The decoder must hand out frames as a player shows them."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.features.video import VideoReader

WIDTH, HEIGHT = 64, 32
# QuickTime/ISO-BMFF matrix {a, b, u, c, d, v, x, y, w} maps a pixel (p, q) to (a p + c q, b p + d q); with the
# y axis pointing down, (a, b, c, d) = (0, 1, -1, 0) takes "right" to "down": the picture is shown turned a
# quarter clockwise (what ffmpeg's `rotate=90` tag and a phone held upright write).
ONE = 0x10000
MATRICES = {
    "clockwise": (0, ONE, -ONE, 0),
    "half": (-ONE, 0, 0, -ONE),
    "counter-clockwise": (0, -ONE, ONE, 0),
}
# Where the encoded top-left corner (red) is seen, as (column, row) fractions of the shown picture, and its size.
SHOWN = {
    None: ((0.1, 0.1), (WIDTH, HEIGHT)),
    "clockwise": ((0.9, 0.1), (HEIGHT, WIDTH)),
    "half": ((0.9, 0.9), (WIDTH, HEIGHT)),
    "counter-clockwise": ((0.1, 0.9), (HEIGHT, WIDTH)),
}


def rotated_mp4(path: Path, turn: str | None) -> Path:
    """An H.264 mp4 whose frames are black with a red top-left quarter, its display matrix set to `turn`."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        image[: HEIGHT // 2, : WIDTH // 2] = (255, 0, 0)
        for _ in range(6):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    if turn is not None:
        raw = bytearray(path.read_bytes())
        box = raw.find(b"tkhd")
        version = raw[box + 4]
        # after size+type: version/flags, times, track id, reserved, duration (v0: 4-byte fields, v1: 8-byte
        # times and duration), 8 reserved, layer, alternate group, volume, 2 reserved, then the matrix
        matrix = box + 4 + 4 + (20 if version == 0 else 32) + 8 + 8
        assert struct.unpack(">9i", raw[matrix:matrix + 36]) == (ONE, 0, 0, 0, ONE, 0, 0, 0, 0x40000000)
        a, b, c, d = MATRICES[turn]
        raw[matrix:matrix + 36] = struct.pack(">9i", a, b, 0, c, d, 0, 0, 0, 0x40000000)
        path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("turn", list(SHOWN))
def test_frames_come_out_as_a_player_shows_them(tmp_path, turn):
    reader = VideoReader(rotated_mp4(tmp_path / "clip.mp4", turn), sample_fps=None)
    frames = list(reader.frames())
    (column, row), size = SHOWN[turn]
    assert len(frames) == 6 and all(f.image.size == size for f in frames)
    pixels = np.asarray(frames[0].image).astype(int)
    red = pixels[int(row * size[1]), int(column * size[0])]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60, (turn, red)
    opposite = pixels[int((1 - row) * size[1]), int((1 - column) * size[0])]
    assert opposite.max() < 60, (turn, opposite)
    assert (reader.summary.width, reader.summary.height) == size
    assert reader.summary.rotation == {None: 0, "clockwise": -90, "half": 180, "counter-clockwise": 90}[turn] or (
        turn == "half" and reader.summary.rotation == -180)


def test_the_extract_stage_records_the_rotation_and_the_shown_size(tmp_path):
    import json

    import yaml
    from test_extract import PARAMS, invoke

    videos = tmp_path / "videos"
    videos.mkdir()
    rotated_mp4(videos / "phone.mp4", "clockwise")
    rotated_mp4(videos / "camera.mp4", None)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    result = invoke(["videos", "--videos", str(videos), "--out", str(tmp_path / "out"), "--params", "params.yaml"],
                    tmp_path)
    assert result.exit_code == 0, result.output
    groups = tmp_path / "out" / "rgb.zarr" / "videos"
    shown = {v: json.loads((groups / v / "zarr.json").read_text())["attributes"] for v in ("phone", "camera")}
    assert {v: (a["rotation"], a["width"], a["height"]) for v, a in shown.items()} == {
        "phone": (-90, HEIGHT, WIDTH), "camera": (0, WIDTH, HEIGHT)}
