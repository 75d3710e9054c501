"""The one code path that turns videos into per-frame CLIP features (rgb) and flow-image features (flow).

A decode thread reads the videos one after another (PyAV), samples frames, applies the CLIP preprocessing
and, for classical flow, computes the flow and its colour image; it hands small ready-to-batch items to the
main thread through a bounded queue. The main thread batches items across videos into RAFT and CLIP batches
on the chosen device and gives each video's features back once all of them are encoded. Memory is bounded
by the queue and the batches (plus each unfinished video's features), never by a video's length. With RAFT,
the flow images' colouring and CLIP resize run on a thread of their own, so the main thread only launches model
work. `run_extraction` returns `ExtractionStats`: how long the encoders waited on decoding. The stages, the
standalone CLI and `grizal localize` (one video) all go through `run_extraction`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
    # The rgb encoder when it is not CLIP: a torchvision video model (grizal.encoders.video.VideoEncoder) that
    # encodes sliding windows of frames; the flow images and the priors stay with CLIP.
    frame: Any = None
    frame_batch_size: int = 8  # windows per batch

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {list(self.kinds)}")
        if "flow" in self.kinds and self.flow is None:
            raise ValueError("flow features need a flow method")


@dataclass
class ExtractionStats:
    """Where the encode (main) thread's time went during one `run_extraction`."""

    wall_s: float = 0.0
    decode_wait_s: float = 0.0  # blocked on the decode queue: the encoders had nothing to do
    encode_s: float = 0.0  # CLIP and flow-model batches, until their results are back in host memory
    prepare_wait_s: float = 0.0  # blocked on the flow-image thread (RAFT only)
    frames: int = 0  # rgb rows encoded
    pairs: int = 0  # flow rows encoded (one per frame pair)
    videos: int = 0
    failed: int = 0

    @property
    def decode_wait_share(self) -> float:
        return self.decode_wait_s / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> str:
        return (f"{self.videos} video(s) extracted ({self.failed} failing), {self.frames} frame(s), {self.pairs} flow "
                f"pair(s) in {self.wall_s:.1f} s; encoders busy {self.encode_s:.1f} s, waiting on decoding "
                f"{self.decode_wait_share:.0%} of the time")


@dataclass
class _Pending:
    job: VideoJob
    queued: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rows: dict[str, list[tuple[float, np.ndarray]]] = field(default_factory=lambda: defaultdict(list))
    summary: DecodeSummary | None = None


_DONE = object()
_WAKE = object()  # a flow-image batch is ready: the main thread stops waiting on the queue and takes it


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
        windows = ex.frame.sliding_windows() if want_rgb and ex.frame is not None else None
        previous = None
        size = None
        for frame in reader.frames():
            if windows is not None:
                for centre, clip in windows.push(frame.timestamp, ex.frame.prepare(frame.image)):
                    self.put(("clip", job.video_id, "rgb", centre, clip))
            elif want_rgb:
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
        for centre, clip in windows.finish() if windows is not None else ():
            self.put(("clip", job.video_id, "rgb", centre, clip))
        return reader.summary


class _FlowImages:
    """Turns batches of RAFT flows into CLIP-ready flow images (colour wheel, PIL resize and crop) on a thread
    of its own, so that this CPU work never holds up the encode thread; batches come back in submission order."""

    max_in_flight = 4  # batches; beyond that the encode thread waits (memory stays bounded)

    def __init__(self, ex: Extractors, wake: Callable[[], None]):
        import torch

        self.ex, self.wake = ex, wake
        # Same OpenMP thread count as the encode thread, which did this work before: same results, bit for bit.
        self.pool = ThreadPoolExecutor(1, "grizal-flow-images", torch.set_num_threads, (torch.get_num_threads(),))
        self.in_flight: deque[Future] = deque()
        self.waited_s = 0.0

    def submit(self, rows: list[tuple[str, float]], flows: Any) -> None:
        future = self.pool.submit(self._images, rows, flows)
        future.add_done_callback(lambda _: self.wake())
        self.in_flight.append(future)

    def _images(self, rows: list[tuple[str, float]], flows: Any) -> list[tuple[str, float, np.ndarray]]:
        from PIL import Image

        from grizal.encoders.flow_colors import flow_to_color

        colors = flow_to_color(flows, self.ex.wheel_max_magnitude).permute(0, 2, 3, 1).numpy()
        return [(video_id, timestamp, self.ex.clip.prepare(Image.fromarray(color)))
                for (video_id, timestamp), color in zip(rows, colors, strict=True)]

    def take(self, keep: int) -> list[tuple[str, float, np.ndarray]]:
        """The finished batches at the head, waiting for more until at most `keep` are in flight."""
        out: list[tuple[str, float, np.ndarray]] = []
        while self.in_flight and (self.in_flight[0].done() or len(self.in_flight) > keep):
            start = time.perf_counter()
            out.extend(self.in_flight.popleft().result())
            self.waited_s += time.perf_counter() - start
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def run_extraction(
    jobs: Sequence[VideoJob],
    ex: Extractors,
    on_done: Callable[[VideoFeatures], None],
    on_failed: Callable[[VideoJob, str], None],
    on_progress: Callable[[int], None] | None = None,
) -> ExtractionStats:
    """Extract every job's features; each video ends in exactly one call of `on_done` or `on_failed`.

    Flow timestamps are those of the later frame of each pair, so a video with N sampled frames has N rgb
    rows and N - 1 flow rows.
    """
    import torch

    from grizal.encoders.flow import ClassicalFlow

    clock = time.perf_counter
    stats = ExtractionStats()
    started = clock()
    items: queue.Queue = queue.Queue(maxsize=ex.queue_size)

    def wake() -> None:
        with contextlib.suppress(queue.Full):  # a full queue: the main thread is not waiting on it then
            items.put_nowait(_WAKE)

    flow_images = _FlowImages(ex, wake) if "flow" in ex.kinds and not isinstance(ex.flow, ClassicalFlow) else None
    stop = threading.Event()
    job_list = _JobList(jobs)
    decoders = [_Decoder(job_list, ex, items, stop, n) for n in range(max(1, min(ex.decode_workers, len(jobs))))]
    running = len(decoders)
    pending: dict[str, _Pending] = {}
    clip_batch: list[tuple[str, str, float, np.ndarray]] = []  # images from `clip.prepare`
    frame_batch: list[tuple[str, str, float, tuple]] = []  # windows of frames for `ex.frame`
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
        stats.videos += 1
        if on_progress:
            on_progress(1)

    def run_clip(batch: list | None = None) -> None:
        batch = clip_batch if batch is None else batch
        if not batch:
            return
        pixels = np.stack([item[3] for item in batch])
        start = clock()
        encoded = (ex.clip if batch is clip_batch else ex.frame).encode_prepared(pixels).numpy()
        stats.encode_s += clock() - start
        touched = []
        for (video_id, kind, timestamp, _), row in zip(batch, encoded, strict=True):
            state = pending.get(video_id)
            if state is None:
                continue  # the video failed meanwhile
            state.rows[kind].append((timestamp, row))
            state.queued[kind] -= 1
            touched.append(video_id)
        stats.frames += sum(1 for item in batch if item[1] == "rgb")
        stats.pairs += sum(1 for item in batch if item[1] == "flow")
        batch.clear()
        for video_id in dict.fromkeys(touched):
            finish_if_ready(video_id)

    def add_clip(video_id: str, kind: str, timestamp: float, pixels: np.ndarray) -> None:
        if kind == "rgb" and ex.frame is not None:
            frame_batch.append((video_id, kind, timestamp, pixels))
            if len(frame_batch) >= ex.frame_batch_size:
                run_clip(frame_batch)
            return
        clip_batch.append((video_id, kind, timestamp, pixels))
        if len(clip_batch) >= ex.clip_batch_size:
            run_clip()

    def run_flow() -> None:
        if not pair_batch:
            return
        previous = torch.from_numpy(np.stack([p[2] for p in pair_batch])).permute(0, 3, 1, 2)
        current = torch.from_numpy(np.stack([p[3] for p in pair_batch])).permute(0, 3, 1, 2)
        start = clock()
        flows = ex.flow(previous, current)
        stats.encode_s += clock() - start
        flow_images.submit([(video_id, timestamp) for video_id, timestamp, _, _ in pair_batch], flows)
        pair_batch.clear()

    def add_flow_images(keep: int) -> None:
        for video_id, timestamp, pixels in flow_images.take(keep):
            if video_id in pending:
                add_clip(video_id, "flow", timestamp, pixels)

    def fail(video_id: str, reason: str) -> None:
        state = pending.pop(video_id, None)
        if state is not None:
            on_failed(state.job, reason)
            stats.failed += 1
            if on_progress:
                on_progress(1)

    for decoder in decoders:
        decoder.start()
    try:
        while True:
            if flow_images is not None:
                add_flow_images(keep=_FlowImages.max_in_flight)
            waiting = clock()
            item = items.get()
            stats.decode_wait_s += clock() - waiting
            if item is _WAKE:
                continue
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
        if flow_images is not None:
            run_flow()
            add_flow_images(keep=0)
        run_clip()
        run_clip(frame_batch)
        for video_id in list(pending):  # cannot happen unless a video ended without its items
            fail(video_id, "internal error: features missing after decoding")
    finally:
        stop.set()
        if flow_images is not None:
            flow_images.close()
            stats.prepare_wait_s = flow_images.waited_s
        for decoder in decoders:
            decoder.join(timeout=5)
    stats.wall_s = clock() - started
    return stats


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
