"""The engine overlaps decoding with encoding, and RAFT's flow images are prepared off the encode thread.

No timing: fake encoders block on events, and the test watches what the other threads do meanwhile.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from PIL import Image
from test_video import make_video

from grizal.encoders.flow_colors import flow_to_color
from pipeline.features.engine import Extractors, VideoJob, run_extraction
from pipeline.features.video import VideoReader

PATIENCE_S = 60  # only bounds a broken run; a working one never waits on it


class FakeClip:
    """Deterministic stand-in for ClipEncoder: 8x8 thumbnails, features = their first 16 pixel values."""

    name = "fake"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.prepared = 0
        self.prepare_threads: set[str] = set()
        self.encode_threads: set[str] = set()

    def prepare(self, image: Image.Image) -> np.ndarray:
        with self.lock:
            self.prepared += 1
            self.prepare_threads.add(threading.current_thread().name)
        return np.asarray(image.resize((8, 8), Image.BILINEAR), dtype=np.uint8)

    def encode_prepared(self, prepared: np.ndarray) -> torch.Tensor:
        self.encode_threads.add(threading.current_thread().name)
        return torch.from_numpy(prepared.reshape(len(prepared), -1)[:, :16].astype(np.float32))


class BlockingClip(FakeClip):
    """The first encode blocks until released. Decoding past the first batch may only start once that encode
    has begun, so everything prepared after `first_batch` was prepared while the encoder was blocked."""

    def __init__(self, first_batch: int, wanted: int) -> None:
        super().__init__()
        self.first_batch, self.wanted = first_batch, wanted
        self.encoding, self.release, self.enough = threading.Event(), threading.Event(), threading.Event()

    def prepare(self, image: Image.Image) -> np.ndarray:
        if self.prepared >= self.first_batch:
            assert self.encoding.wait(PATIENCE_S)
        out = super().prepare(image)
        if self.prepared - self.first_batch >= self.wanted:
            self.enough.set()
        return out

    def encode_prepared(self, prepared: np.ndarray) -> torch.Tensor:
        self.encoding.set()
        self.release.wait(PATIENCE_S)
        return super().encode_prepared(prepared)


class FakeRaft:
    """Batched like RaftFlow: (B, 3, H, W) uint8 pairs -> (B, 2, H, W) float32, row by row independent."""

    def __init__(self) -> None:
        self.threads: set[str] = set()

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        return width, height

    def __call__(self, previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        self.threads.add(threading.current_thread().name)
        return (current[:, :2].float() - previous[:, 1:].float()) / 7


def extract(jobs: list[VideoJob], ex: Extractors) -> tuple[dict, object]:
    results, failures = {}, []
    stats = run_extraction(jobs, ex, lambda r: results.__setitem__(r.video_id, r.features),
                           lambda job, reason: failures.append((job.video_id, reason)))
    assert not failures
    return results, stats


def test_decoding_goes_on_while_the_encoder_is_busy(tmp_path):
    video = make_video(tmp_path / "v.mp4", frames=30)
    queue_size, batch = 6, 2
    blocking = BlockingClip(first_batch=batch, wanted=queue_size)
    ex = Extractors(clip=blocking, kinds=("rgb",), clip_batch_size=batch, queue_size=queue_size, decode_workers=1)
    jobs = [VideoJob("v", video)]
    out: dict = {}
    runner = threading.Thread(target=lambda: out.update(zip(("results", "stats"), extract(jobs, ex), strict=True)),
                              name="encode-thread")
    runner.start()
    try:
        assert blocking.encoding.wait(PATIENCE_S)
        # The encoder sits on its first batch; the decode thread fills the queue meanwhile.
        assert blocking.enough.wait(PATIENCE_S), f"only {blocking.prepared - batch} frames decoded while encoding"
    finally:
        blocking.release.set()
        runner.join(PATIENCE_S)
    assert not runner.is_alive()
    assert blocking.prepare_threads == {"grizal-decode-0"} and blocking.encode_threads == {"encode-thread"}

    expected, _ = extract(jobs, Extractors(clip=FakeClip(), kinds=("rgb",), clip_batch_size=5))
    features, timestamps = out["results"]["v"]["rgb"]
    assert features.shape == (30, 16)
    np.testing.assert_array_equal(features, expected["v"]["rgb"][0])
    np.testing.assert_array_equal(timestamps, expected["v"]["rgb"][1])
    stats = out["stats"]
    assert (stats.frames, stats.pairs, stats.videos, stats.failed) == (30, 0, 1, 0)
    assert 0 <= stats.decode_wait_s <= stats.wall_s and 0 <= stats.decode_wait_share <= 1


def serial_flow_features(path, clip: FakeClip, flow: FakeRaft) -> tuple[np.ndarray, np.ndarray]:
    """The flow rows worked out one pair at a time, without the engine."""
    frames = list(VideoReader(path, None, 2).frames())
    rows, stamps = [], []
    for before, after in zip(frames[:-1], frames[1:], strict=True):
        pair = [torch.from_numpy(np.array(f.image)).permute(2, 0, 1)[None] for f in (before, after)]
        color = flow_to_color(flow(*pair))[0].permute(1, 2, 0).numpy()
        rows.append(clip.encode_prepared(clip.prepare(Image.fromarray(color))[None])[0].numpy())
        stamps.append(after.timestamp)
    return np.stack(rows), np.array(stamps)


def test_raft_flow_images_are_prepared_off_the_encode_thread(tmp_path):
    videos = {"a": make_video(tmp_path / "a.mp4", frames=17), "b": make_video(tmp_path / "b.mp4", frames=11),
              "tall": make_video(tmp_path / "tall.mp4", frames=9, width=48, height=64)}
    clip, flow = FakeClip(), FakeRaft()
    ex = Extractors(clip=clip, kinds=("flow",), flow=flow, clip_batch_size=4, flow_batch_size=3, decode_workers=2)
    results, stats = extract([VideoJob(v, p) for v, p in videos.items()], ex)

    # The encode thread ran the models only; every flow image was coloured and resized elsewhere.
    assert flow.threads == {"MainThread"} and clip.encode_threads == {"MainThread"}
    assert clip.prepare_threads == {"grizal-flow-images_0"}
    assert (stats.frames, stats.pairs, stats.videos) == (0, 16 + 10 + 8, 3)
    for video_id, path in videos.items():
        features, timestamps = serial_flow_features(path, FakeClip(), FakeRaft())
        np.testing.assert_array_equal(results[video_id]["flow"][0], features)
        np.testing.assert_array_equal(results[video_id]["flow"][1], timestamps)
