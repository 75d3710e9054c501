"""The one code path that turns videos into per-frame CLIP features (rgb) and flow-image features (flow).

A decode thread reads the videos one after another (PyAV), samples frames, applies the CLIP preprocessing
and, for classical flow, computes the flow and its colour image; it hands small ready-to-batch items to the
main thread through a bounded queue. The main thread batches items across videos into RAFT and CLIP batches
on the chosen device and gives each video's features back once all of them are encoded. Memory is bounded
by the queue and the batches (plus each unfinished video's features), never by a video's length. The
stages, the standalone CLI and `grizal localize` (one video) all go through `run_extraction`.
"""

from __future__ import annotations

import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.features.video import DecodeSummary, VideoError, VideoReader

if TYPE_CHECKING:  # torch, open_clip and OpenCV load when extraction runs: the CLIs' --help stays fast
    from grizal.encoders.clip import ClipEncoder
    from grizal.encoders.flow import ClassicalFlow, FlowSpec, RaftFlow

KINDS = ("rgb", "flow")


@dataclass(frozen=True)
class VideoJob:
    video_id: str
    path: Path


@dataclass
class VideoFeatures:
    video_id: str
    path: Path
    summary: DecodeSummary
    features: dict[str, tuple[np.ndarray, np.ndarray]]  # kind -> (features (N, D), timestamps (N,))


@dataclass
class Extractors:
    """What to extract and with which frozen encoders (see `pipeline.extract.build_extractors`)."""

    clip: ClipEncoder
    kinds: Sequence[str] = ("rgb",)
    flow: ClassicalFlow | RaftFlow | None = None
    sample_fps: float | None = None
    min_frames: int = 2
    clip_batch_size: int = 64
    flow_batch_size: int = 8
    wheel_max_magnitude: float | None = None  # None: each flow image normalised by its own largest vector
    queue_size: int = 128
    decode_workers: int = 2  # threads decoding different videos (PyAV, PIL and OpenCV release the GIL)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {list(self.kinds)}")
        if "flow" in self.kinds and self.flow is None:
            raise ValueError("flow features need a flow method")


@dataclass
class _Pending:
    job: VideoJob
    queued: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rows: dict[str, list[tuple[float, np.ndarray]]] = field(default_factory=lambda: defaultdict(list))
    summary: DecodeSummary | None = None


_DONE = object()


class _JobList:
    """Hands each job to exactly one decode thread."""

    def __init__(self, jobs: Iterable[VideoJob]):
        self._jobs = iter(jobs)
        self._lock = threading.Lock()

    def __iter__(self):
        return self

    def __next__(self) -> VideoJob:
        with self._lock:
            return next(self._jobs)


class _Decoder(threading.Thread):
    """Decodes and preprocesses in the background; items go to `out` in each video's frame order (one thread
    handles a whole video, several threads work on different videos)."""

    def __init__(self, jobs: _JobList, ex: Extractors, out: queue.Queue, stop: threading.Event, number: int):
        from grizal.encoders.flow import ClassicalFlow

        super().__init__(name=f"grizal-decode-{number}", daemon=True)
        self.jobs, self.ex, self.out, self.stop = jobs, ex, out, stop
        # DIS keeps internal state, so the decode thread gets its own instance.
        flow = ex.flow
        self.classical = ClassicalFlow(flow.spec) if isinstance(flow, ClassicalFlow) else None

    def put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def run(self) -> None:
        import torch

        torch.set_num_threads(1)  # per thread (OpenMP): the decode side's small tensor ops need no pool
        try:
            for job in self.jobs:
                if self.stop.is_set():
                    break
                self.put(("start", job))
                try:
                    summary = self.decode(job)
                except VideoError as err:
                    self.put(("fail", job.video_id, err.reason))
                except Exception as err:  # noqa: BLE001 - e.g. a PIL error on one odd frame; the rest goes on
                    self.put(("fail", job.video_id, f"{type(err).__name__}: {err}"))
                else:
                    self.put(("end", job.video_id, summary))
            self.put(_DONE)
        except BaseException as err:  # noqa: BLE001 - handed to the main thread, which re-raises it
            self.put(("crash", err))

    def decode(self, job: VideoJob) -> DecodeSummary:
        from PIL import Image

        from grizal.encoders.flow_colors import flow_to_color

        ex = self.ex
        reader = VideoReader(job.path, ex.sample_fps, ex.min_frames)
        want_rgb, want_flow = "rgb" in ex.kinds, "flow" in ex.kinds
        previous = None
        size = None
        for frame in reader.frames():
            if want_rgb:
                self.put(("clip", job.video_id, "rgb", frame.timestamp, ex.clip.prepare(frame.image)))
            if not want_flow:
                continue
            if size is None:
                size = ex.flow.frame_size(*frame.image.size)
            small = np.asarray(frame.image.resize(size, Image.BILINEAR) if frame.image.size != size else frame.image)
            if previous is not None:
                if self.classical is not None:
                    color = flow_to_color(self.classical(previous, small), ex.wheel_max_magnitude)
                    image = Image.fromarray(color.permute(1, 2, 0).numpy())
                    self.put(("clip", job.video_id, "flow", frame.timestamp, ex.clip.prepare(image)))
                else:
                    self.put(("pair", job.video_id, frame.timestamp, previous, small))
            previous = small
        return reader.summary


def run_extraction(
    jobs: Sequence[VideoJob],
    ex: Extractors,
    on_done: Callable[[VideoFeatures], None],
    on_failed: Callable[[VideoJob, str], None],
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Extract every job's features; each video ends in exactly one call of `on_done` or `on_failed`.

    Flow timestamps are those of the later frame of each pair, so a video with N sampled frames has N rgb
    rows and N - 1 flow rows.
    """
    import torch
    from PIL import Image

    from grizal.encoders.flow_colors import flow_to_color

    items: queue.Queue = queue.Queue(maxsize=ex.queue_size)
    stop = threading.Event()
    job_list = _JobList(jobs)
    decoders = [_Decoder(job_list, ex, items, stop, n) for n in range(max(1, min(ex.decode_workers, len(jobs))))]
    running = len(decoders)
    pending: dict[str, _Pending] = {}
    clip_batch: list[tuple[str, str, float, np.ndarray]] = []  # images from `clip.prepare`
    pair_batch: list[tuple[str, float, np.ndarray, np.ndarray]] = []

    def finish_if_ready(video_id: str) -> None:
        state = pending.get(video_id)
        if state is None or state.summary is None or any(state.queued.values()):
            return
        del pending[video_id]
        features = {}
        for kind in ex.kinds:
            rows = state.rows[kind]
            features[kind] = (np.stack([r[1] for r in rows]), np.array([r[0] for r in rows], dtype=np.float64))
        on_done(VideoFeatures(video_id, state.job.path, state.summary, features))
        if on_progress:
            on_progress(1)

    def run_clip() -> None:
        if not clip_batch:
            return
        encoded = ex.clip.encode_prepared(np.stack([item[3] for item in clip_batch])).numpy()
        touched = []
        for (video_id, kind, timestamp, _), row in zip(clip_batch, encoded, strict=True):
            state = pending.get(video_id)
            if state is None:
                continue  # the video failed meanwhile
            state.rows[kind].append((timestamp, row))
            state.queued[kind] -= 1
            touched.append(video_id)
        clip_batch.clear()
        for video_id in dict.fromkeys(touched):
            finish_if_ready(video_id)

    def add_clip(video_id: str, kind: str, timestamp: float, pixels: np.ndarray) -> None:
        clip_batch.append((video_id, kind, timestamp, pixels))
        if len(clip_batch) >= ex.clip_batch_size:
            run_clip()

    def run_flow() -> None:
        if not pair_batch:
            return
        previous = torch.from_numpy(np.stack([p[2] for p in pair_batch])).permute(0, 3, 1, 2)
        current = torch.from_numpy(np.stack([p[3] for p in pair_batch])).permute(0, 3, 1, 2)
        colors = flow_to_color(ex.flow(previous, current), ex.wheel_max_magnitude).permute(0, 2, 3, 1).numpy()
        batch = list(pair_batch)
        pair_batch.clear()
        for (video_id, timestamp, _, _), color in zip(batch, colors, strict=True):
            if video_id in pending:
                add_clip(video_id, "flow", timestamp, ex.clip.prepare(Image.fromarray(color)))

    def fail(video_id: str, reason: str) -> None:
        state = pending.pop(video_id, None)
        if state is not None:
            on_failed(state.job, reason)
            if on_progress:
                on_progress(1)

    for decoder in decoders:
        decoder.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                running -= 1
                if running == 0:
                    break
                continue
            tag = item[0]
            if tag == "clip":
                _, video_id, kind, timestamp, pixels = item
                pending[video_id].queued[kind] += 1
                add_clip(video_id, kind, timestamp, pixels)
            elif tag == "pair":
                _, video_id, timestamp, previous, current = item
                pending[video_id].queued["flow"] += 1
                if pair_batch and pair_batch[0][2].shape != previous.shape:
                    run_flow()  # RAFT batches hold one frame size
                pair_batch.append((video_id, timestamp, previous, current))
                if len(pair_batch) >= ex.flow_batch_size:
                    run_flow()
            elif tag == "start":
                pending[item[1].video_id] = _Pending(item[1])
            elif tag == "end":
                pending[item[1]].summary = item[2]
                finish_if_ready(item[1])
            elif tag == "fail":
                fail(item[1], item[2])
            elif tag == "crash":
                raise item[1]
        run_flow()
        run_clip()
        for video_id in list(pending):  # cannot happen unless a video ended without its items
            fail(video_id, "internal error: features missing after decoding")
    finally:
        stop.set()
        for decoder in decoders:
            decoder.join(timeout=5)


def extract_video(path: str | Path, ex: Extractors, video_id: str | None = None) -> VideoFeatures:
    """One video's features and decode summary (duration, fps); raises VideoError for a bad video."""
    path = Path(path)
    results: list[VideoFeatures] = []
    failures: list[str] = []
    run_extraction([VideoJob(video_id or path.stem, path)], ex, results.append,
                   lambda _job, reason: failures.append(reason))
    if failures:
        raise VideoError(failures[0])
    return results[0]


def extract_video_features(path: str | Path, ex: Extractors) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{kind: (features (N, D) float32, timestamps (N,) seconds)} of one video; raises VideoError if bad."""
    return extract_video(path, ex).features


def describe_flow(flow: ClassicalFlow | RaftFlow, wheel_max_magnitude: float | None) -> dict[str, Any]:
    return {**flow.describe(), "wheel_max_magnitude": wheel_max_magnitude}


def __getattr__(name: str) -> Any:
    if name == "FlowSpec":  # re-exported; loads the flow module (torch, OpenCV) on first use
        from grizal.encoders.flow import FlowSpec

        return FlowSpec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "KINDS",
    "Extractors",
    "FlowSpec",
    "VideoFeatures",
    "VideoJob",
    "describe_flow",
    "extract_video",
    "extract_video_features",
    "run_extraction",
]
