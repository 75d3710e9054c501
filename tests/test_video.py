"""PyAV decoding: sampling with true timestamps, durations, and every kind of bad video.

The helpers here (`make_video`, `make_bad_videos`) also serve the other extraction tests.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.features.video import VideoError, VideoReader, sample_slot, sampled_frames


def frame_image(i: int, width: int, height: int) -> np.ndarray:
    """A textured frame whose content moves right by 2 px per frame (so flow and features vary)."""
    y, x = np.mgrid[0:height, 0:width]
    shifted = x - 2 * i
    img = np.stack([(shifted * 7) % 256, (y * 5 + shifted * 3) % 256, ((shifted // 4 + y // 4) % 2) * 255], -1)
    return img.astype(np.uint8)


def make_video(path: Path, frames: int = 20, fps: int = 10, width: int = 64, height: int = 48,
               fmt: str | None = None, faststart: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format=fmt, options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_image(i, width, height), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def make_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for _ in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def make_bad_videos(folder: Path) -> dict[str, tuple[Path, str]]:
    """One file per kind of bad input: name -> (path, a word the failure reason must contain)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = make_video(folder / "_source.bin", frames=30, faststart=True, fmt="mp4").read_bytes()
    (folder / "_source.bin").unlink()
    (folder / "zero_bytes.mp4").write_bytes(b"")
    (folder / "not_a_video.mp4").write_bytes(b"this is a text file, not a video\n" * 10)
    (folder / "truncated.mp4").write_bytes(good[: len(good) // 2])
    garbled = bytearray(good)
    for i in range(len(garbled) // 3, len(garbled)):
        garbled[i] = (garbled[i] * 7 + 13) % 256
    (folder / "garbled.mp4").write_bytes(bytes(garbled))
    make_video(folder / "single_frame.mp4", frames=1)
    make_audio_only(folder / "audio_only.mp4")
    return {
        "zero_bytes": (folder / "zero_bytes.mp4", "empty"),
        "not_a_video": (folder / "not_a_video.mp4", "cannot open"),
        "truncated": (folder / "truncated.mp4", "decoding failed"),
        "garbled": (folder / "garbled.mp4", "decoding failed"),
        "single_frame": (folder / "single_frame.mp4", "1 decodable frame"),
        "audio_only": (folder / "audio_only.mp4", "no video stream"),
        "missing": (folder / "missing.mp4", "not found"),
    }


def test_sampling_keeps_true_timestamps(tmp_path):
    video = make_video(tmp_path / "v.mp4", frames=30, fps=10)
    frames = sampled_frames(video, sample_fps=4)
    # 10 fps sampled at 4 fps: the first frame of each 0.25 s slot.
    assert [round(f.timestamp, 3) for f in frames] == pytest.approx(
        [0.0, 0.3, 0.5, 0.8, 1.0, 1.3, 1.5, 1.8, 2.0, 2.3, 2.5, 2.8])
    assert frames[0].image.size == (64, 48) and frames[0].image.mode == "RGB"
    everything = sampled_frames(video, sample_fps=None)
    assert len(everything) == 30
    assert [f.timestamp for f in everything] == pytest.approx(np.arange(30) / 10)
    # Asking for more frames than the video has keeps each frame once.
    assert len(sampled_frames(video, sample_fps=25)) == 30


def test_decoded_pixels_follow_the_source(tmp_path):
    video = make_video(tmp_path / "v.mp4", frames=3, width=64, height=48)
    first = np.asarray(sampled_frames(video)[0].image).astype(int)
    assert np.abs(first - frame_image(0, 64, 48).astype(int)).mean() < 20  # lossy, but the same picture


def test_duration_from_container_or_decoding(tmp_path):
    reader = VideoReader(make_video(tmp_path / "v.mp4", frames=25, fps=10), sample_fps=5)
    assert len(list(reader.frames())) == 13
    assert reader.summary.duration == pytest.approx(2.5)
    assert reader.summary.duration_source == "container"
    assert (reader.summary.decoded_frames, reader.summary.sampled_frames) == (25, 13)
    # A raw H.264 stream carries no duration (nor timestamps): the duration comes from the decoded frames.
    raw = VideoReader(make_video(tmp_path / "raw.h264", frames=20, fmt="h264"), sample_fps=None)
    frames = list(raw.frames())
    assert len(frames) == 20
    assert raw.summary.duration_source == "decoded"
    assert raw.summary.duration == pytest.approx(frames[-1].timestamp + 1 / raw.summary.fps)


@pytest.mark.parametrize("kind", ["zero_bytes", "not_a_video", "truncated", "garbled", "single_frame",
                                  "audio_only", "missing"])
def test_bad_videos_raise_one_line_reasons(tmp_path, kind):
    path, word = make_bad_videos(tmp_path)[kind]
    with pytest.raises(VideoError) as err:
        list(VideoReader(path, sample_fps=5).frames())
    assert word in err.value.reason
    assert "\n" not in err.value.reason


def test_too_few_sampled_frames(tmp_path):
    video = make_video(tmp_path / "v.mp4", frames=3, fps=10)  # 0.3 s: one frame at 1 fps
    with pytest.raises(VideoError, match="only 1 frame"):
        list(VideoReader(video, sample_fps=1).frames())


def test_sample_slot():
    assert sample_slot(0.0, 0.0, None) is None
    assert [sample_slot(t, 0.0, 5) for t in (0.0, 0.1, 0.2, 0.39, 0.4)] == [0, 0, 1, 1, 2]
    assert sample_slot(1.2, 1.0, 5) == 1  # slots count from the first frame
