"""Decoding videos with PyAV at a fixed sampling rate, keeping the true presentation timestamps; frames are
turned upright by the stream's display rotation (a quarter turn; a mirroring display matrix is not applied).

A bad video (missing, empty, corrupt, truncated, undecodable, too short) raises `VideoError` with a one-line
reason; the extraction stage records it in the store's failures manifest and goes on with the other videos.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # PyAV loads when a video is opened
    from PIL import Image

# A video whose frames stop this much before the container's declared duration is treated as truncated.
TRUNCATION_TOLERANCE_S = 1.0
TRUNCATION_TOLERANCE_FRACTION = 0.05


class VideoError(Exception):
    """A video that cannot be used; `reason` is one line for the failures manifest."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class SampledFrame:
    timestamp: float  # seconds from the start of the video stream
    image: Image.Image  # RGB, native resolution


@dataclass
class DecodeSummary:
    decoded_frames: int = 0
    sampled_frames: int = 0
    duration: float | None = None
    duration_source: str = "container"  # "container" (metadata) or "decoded" (last frame's end)
    fps: float | None = None
    width: int = 0  # as displayed (after the display rotation)
    height: int = 0
    rotation: int = 0  # the display matrix's angle, degrees counter-clockwise (phones write it, not upright frames)


def upright(image: Image.Image, rotation: float) -> Image.Image:
    """The frame as a player shows it: turned counter-clockwise by `rotation` degrees (PyAV's
    `VideoFrame.rotation`, from the stream's display matrix), to the nearest quarter turn."""
    from PIL import Image

    turns = round(rotation / 90) % 4
    if turns == 0:
        return image
    return image.transpose((Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180,
                            Image.Transpose.ROTATE_270)[turns - 1])


def check_video_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise VideoError("file not found")
    if not path.is_file():
        raise VideoError("not a regular file")
    if path.stat().st_size == 0:
        raise VideoError("empty file (0 bytes)")
    return path


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def sample_slot(timestamp: float, start: float, sample_fps: float | None) -> int | None:
    """Which 1/sample_fps-wide slot a frame falls in; the first frame of each slot is kept (None: keep all)."""
    if not sample_fps:
        return None
    return math.floor((timestamp - start) * sample_fps + 1e-6)


class VideoReader:
    """Iterates a video's frames sampled at `sample_fps` (None or 0: every frame).

    Memory stays at one decoded frame: frames are yielded as they are decoded. After the iteration ends,
    `summary` holds the decoded/sampled counts and the duration (from the container, or from the last
    decoded frame when the container has none).
    """

    def __init__(self, path: str | os.PathLike, sample_fps: float | None = None, min_frames: int = 2):
        self.path = check_video_file(path)
        if sample_fps is not None and sample_fps < 0:
            raise ValueError("sample_fps must be positive or None")
        self.sample_fps = sample_fps or None
        self.min_frames = min_frames
        self.summary = DecodeSummary()

    def frames(self) -> Iterator[SampledFrame]:
        import av

        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
            raise VideoError(f"cannot open as a video ({_first_line(err)})") from None
        with container:
            if not container.streams.video:
                raise VideoError("no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            yield from self._decode(container, stream)

    def _decode(self, container, stream) -> Iterator[SampledFrame]:
        import av

        summary = self.summary
        time_base = stream.time_base
        stream_start = stream.start_time or 0
        rate = stream.average_rate or stream.guessed_rate
        summary.fps = float(rate) if rate else None
        summary.width, summary.height = stream.codec_context.width, stream.codec_context.height
        declared = None
        if stream.duration and time_base:
            declared = float(stream.duration * time_base)
        elif container.duration:
            declared = container.duration / av.time_base
        last_ts = None
        last_slot = -1
        first_ts = None
        frame_span = 1.0 / summary.fps if summary.fps else 0.0
        try:
            for index, frame in enumerate(container.decode(stream)):
                summary.decoded_frames += 1
                timed = frame.pts is not None and bool(time_base)
                if timed:
                    ts = float((frame.pts - stream_start) * time_base)
                elif summary.fps:
                    ts = index / summary.fps
                else:
                    raise VideoError("frames carry no timestamps and the stream has no frame rate")
                if last_ts is not None and ts <= last_ts:
                    continue  # a repeated or out-of-order timestamp: keep the first frame shown at that time
                if first_ts is None:
                    first_ts = ts
                last_ts = ts
                if timed and frame.duration:
                    frame_span = float(frame.duration * time_base)
                slot = sample_slot(ts, first_ts, self.sample_fps)
                if slot is not None:
                    if slot <= last_slot:
                        continue
                    last_slot = slot
                summary.sampled_frames += 1
                if summary.sampled_frames == 1:
                    summary.rotation = int(frame.rotation or 0)
                    if round(summary.rotation / 90) % 2:
                        summary.width, summary.height = summary.height, summary.width
                yield SampledFrame(ts, upright(frame.to_image(), frame.rotation or 0))
        except av.error.FFmpegError as err:
            where = f"{last_ts:.2f}s" if last_ts is not None else "the start"
            raise VideoError(
                f"decoding failed after {summary.decoded_frames} frames at {where} ({_first_line(err)})"
            ) from None
        if summary.decoded_frames < self.min_frames:
            raise VideoError(f"only {summary.decoded_frames} decodable frame(s); at least {self.min_frames} needed")
        if summary.sampled_frames < self.min_frames:
            raise VideoError(
                f"only {summary.sampled_frames} frame(s) at {self.sample_fps} fps; at least {self.min_frames} needed"
            )
        decoded_end = last_ts + frame_span
        if declared:
            missing = declared - decoded_end
            if missing > max(TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_FRACTION * declared):
                raise VideoError(f"truncated: frames end at {decoded_end:.2f}s but the container says {declared:.2f}s")
            summary.duration, summary.duration_source = declared, "container"
        else:
            summary.duration, summary.duration_source = decoded_end, "decoded"


def sampled_frames(path: str | os.PathLike, sample_fps: float | None = None) -> list[SampledFrame]:
    """All sampled frames of a short video at once (tests and previews; the stages stream instead)."""
    return list(VideoReader(path, sample_fps).frames())
