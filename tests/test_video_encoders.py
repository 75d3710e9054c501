"""The torchvision video frame encoder (R(2+1)D, R3D, MC3, S3D, MViT): construction at random init, clip
features over a sliding window stamped at true timestamps, local checkpoints, extraction into an rgb store,
training and evaluation on it, and the default (open_clip) store settings left exactly as they were."""

from pathlib import Path

import numpy as np
import pytest
import torch

from grizal.encoders.clip import EncoderConfigError
from grizal.encoders.video import SlidingWindows, VideoSpec, load_video_encoder
from pipeline.common import UserError, atomic_write_json
from pipeline.data.build import prepare
from pipeline.data.demo import DemoConfig, make_video
from pipeline.features.engine import extract_video
from pipeline.features.extraction import run_feature_extraction
from pipeline.features.inputs import FeatureSet
from pipeline.features.priors import PriorEncoder, run_priors
from pipeline.features.settings import (
    build_clip,
    build_extractors,
    extract_config,
    extractors_from_stores,
    store_attrs,
)
from pipeline.features.store import Shard, settings_sha256
from pipeline.modelling.fit import TrainConfig, train
from pipeline.modelling.inference import evaluate_model
from pipeline.priors.config import build_config
from pipeline.priors.generation import run as generate_run

TINY_CLIP = {"model": "grizal-tiny", "pretrained": None, "seed": 0, "precision": "auto", "batch_size": 32}
VIDEO = {"family": "torchvision_video", "model": "r3d_18", "weights": None, "window": 4, "stride": 1,
         "crop_size": 32, "batch_size": 4}
EXTRACT = {"device": "cpu", "T": 16, "clip": TINY_CLIP, "frames": {"sample_fps": 2.0, "min_frames": 2},
           "frame_encoder": VIDEO, "priors": {"name_template": "a video of a {}"}}


def test_sliding_windows_are_centred_and_edge_padded():
    windows = SlidingWindows(4, 1)
    out = [w for i in range(6) for w in windows.push(i / 10, i)] + windows.finish()
    assert [t for t, _ in out] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]  # one per frame, at its own timestamp
    assert out[0][1] == (0, 0, 0, 1) and out[2][1] == (0, 1, 2, 3) and out[-1][1] == (3, 4, 5, 5)
    strided = SlidingWindows(3, 3)
    out = [w for i in range(7) for w in strided.push(float(i), i)] + strided.finish()
    assert [t for t, _ in out] == [0.0, 3.0, 6.0] and out[1][1] == (2, 3, 4)
    short = SlidingWindows(16, 1)
    out = [w for i in range(2) for w in short.push(float(i), i)] + short.finish()
    assert [len(c) for _, c in out] == [16, 16] and set(out[0][1]) == {0, 1}


@pytest.mark.parametrize("model", ["r3d_18", "r2plus1d_18", "mc3_18"])
def test_resnet_family_gives_512_dim_clip_features(model):
    encoder = load_video_encoder(VideoSpec(model=model, weights=None, window=4, crop_size=32))
    assert encoder.dim == 512 and encoder.precision == "fp32"
    clips = np.random.default_rng(0).integers(0, 256, (3, 4, 32, 32, 3), dtype=np.uint8)
    out = encoder.encode_prepared(clips)
    assert out.shape == (3, 512) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1])
    assert encoder.describe()["weights"] == "random-init seed 0"
    assert encoder.preprocess_cfg["crop"] == 32


def test_s3d_and_mvit_build_and_run_one_clip():
    """At their own input size (16 x 224 x 224), the only one S3D's pooling and MViT's embeddings accept."""
    for model, dim in (("s3d", 1024), ("mvit_v2_s", 768)):
        encoder = load_video_encoder(VideoSpec(model=model, weights=None, window=16))
        assert encoder.dim == dim and encoder.preprocess_cfg["crop"] == 224
        out = encoder.encode_prepared(np.zeros((1, 16, 224, 224, 3), dtype=np.uint8))
        assert out.shape == (1, dim)
    with pytest.raises(EncoderConfigError, match="exactly 16 frames"):
        load_video_encoder(VideoSpec(model="mvit_v1_b", weights=None, window=8))


def test_local_checkpoint_loads_with_weights_only(tmp_path):
    made = load_video_encoder(VideoSpec(model="r2plus1d_18", weights=None, seed=3, window=4, crop_size=32))
    path = tmp_path / "r2plus1d.pt"
    torch.save(made.model.state_dict(), path)  # headless: no classifier
    loaded = load_video_encoder(VideoSpec(model="r2plus1d_18", weights=str(path), window=4, crop_size=32))
    assert loaded.weights == str(path) and loaded.weights_sha256 == made.weights_sha256
    clips = np.random.default_rng(1).integers(0, 256, (2, 4, 32, 32, 3), dtype=np.uint8)
    assert torch.equal(loaded.encode_prepared(clips), made.encode_prepared(clips))
    with pytest.raises(EncoderConfigError, match="does not fit"):
        load_video_encoder(VideoSpec(model="r3d_18", weights=str(path), window=4, crop_size=32))
    with pytest.raises(EncoderConfigError, match="not found"):
        load_video_encoder(VideoSpec(model="r3d_18", weights=str(tmp_path / "missing.pt")))
    with pytest.raises(EncoderConfigError, match="unknown weights"):
        load_video_encoder(VideoSpec(model="r3d_18", weights="IMAGENET_V9"))


def test_bad_frame_encoder_params_are_one_line_errors():
    with pytest.raises(UserError, match="frame_encoder.family"):
        extract_config({"extract": {"frame_encoder": {"family": "i3d"}}})
    with pytest.raises(UserError, match="extract.frame_encoder.model: expected one of r2plus1d_18, .*, got 'c3d'"):
        extract_config({"extract": {**EXTRACT, "frame_encoder": {**VIDEO, "model": "c3d"}}})
    cfg = extract_config({"extract": {**EXTRACT, "frame_encoder": VIDEO}})
    cfg["frame_encoder"]["model"] = "c3d"  # past the door: the builder still names it
    with pytest.raises(UserError, match="unknown torchvision video model 'c3d'"):
        build_extractors(cfg, ("rgb",), "params.yaml")


def test_default_open_clip_settings_are_unchanged():
    """The default frame encoder leaves the rgb store's settings (and so every existing store) as they were."""
    cfg = extract_config({"extract": {"device": "cpu", "clip": {**TINY_CLIP, "precision": "bf16"}}})
    attrs = store_attrs("rgb", build_extractors(cfg, ("rgb",), "test"), 16)
    assert "frame_encoder" not in attrs["settings"] and set(attrs["settings"]) == {"kind", "clip", "frames"}
    assert attrs["settings_sha256"] == settings_sha256(attrs["settings"])
    assert attrs["encoder_model"] == "grizal-tiny"
    # The digest these settings had before video encoders existed (commit 5c5880e).
    assert attrs["settings_sha256"] == "27c7cf0d13cfb89ea480e5486f24e775f47e3e1109c18668bb1d10fd3513bb57"


@pytest.fixture(scope="module")
def video_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("video_world")
    demo = DemoConfig(seed=0, size=128, fps=8, min_duration=8.0, max_duration=9.0, second_class_prob=0.0)
    (root / "videos").mkdir()
    database = dict(make_video(root / "videos", demo, subset, n)
                    for subset, n in (("training", 0), ("training", 1), ("training", 5), ("validation", 3)))
    atomic_write_json(root / "annotations.json", {"version": "test", "database": database})
    (root / "unseen.txt").write_text("circle slides right\n")
    index, split = prepare({"dataset": "demo", "annotations": str(root / "annotations.json"),
                            "video_dir": str(root / "videos"), "protocol": "open",
                            "unseen_list": str(root / "unseen.txt")}, root / "prepare")
    assert generate_run(build_config(None, "test", {"out": root / "priors", "k": 2}),
                        [*split.seen, *split.unseen]) == 0
    cfg = extract_config({"extract": EXTRACT})
    ex = build_extractors(cfg, ("rgb",), "test")
    features = root / "features"
    run_feature_extraction({vid: Path(e.path) for vid, e in index.videos.items()}, {"rgb": features / "rgb.zarr"},
                           ex, EXTRACT["T"], shard=Shard(), rebuild=True, max_failure_fraction=0.0)
    run_priors(root / "priors" / "priors.json", features / "priors.zarr", PriorEncoder.of(build_clip(cfg, "test")),
               EXTRACT["priors"]["name_template"])
    return {"root": root, "index": index, "split": split, "features": features, "ex": ex}


def test_extraction_stores_one_clip_feature_per_sampled_frame(video_world):
    index, features = video_world["index"], FeatureSet.open(video_world["features"])
    attrs = features.attrs("rgb")
    assert attrs["encoder_model"] == "r3d_18" and attrs["dim"] == 512
    assert attrs["settings"]["frame_encoder"]["window"] == 4 and "clip" not in attrs["settings"]
    vid = "demo_test_003"
    feats, stamps = features.store("rgb").read_videos([vid])[vid]
    assert feats.shape == (len(stamps), 512) and np.all(np.diff(stamps) > 0)
    clip_only = extract_config({"extract": {**EXTRACT, "frame_encoder": {"family": "open_clip"}}})
    per_frame = extract_video(index.videos[vid].path, build_extractors(clip_only, ("rgb",), "test"))
    np.testing.assert_array_equal(per_frame.features["rgb"][1], stamps)  # the sampled frames' true timestamps
    rebuilt = extractors_from_stores(attrs, None, "cpu", "test", clip_settings=features.attrs("priors")
                                     ["settings"]["clip"])
    assert store_attrs("rgb", rebuilt, 16)["settings_sha256"] == attrs["settings_sha256"]
    again = extract_video(index.videos[vid].path, rebuilt)
    np.testing.assert_allclose(again.features["rgb"][0], feats, rtol=1e-5, atol=1e-5)


def test_training_and_evaluation_read_video_features(video_world):
    root, index, split = video_world["root"], video_world["index"], video_world["split"]
    model = {"width": 32, "heads": 2, "vle_layers": 1, "ofe_layers": 1, "ft_layers": 1, "k": 2, "dropout": 0.0,
             "use_flow": False}
    checkpoint = train(index, split, video_world["features"], model, {}, TrainConfig(epochs=1, batch_size=8,
                       device="cpu"), root / "train", progress=False, log=lambda *_: None)
    outcome = evaluate_model(index, split, video_world["features"], checkpoint, {}, [0.3, 0.5], root / "eval",
                             n_plots=0, device="cpu")
    for name in ("baseline_name_bg", "baseline_priors"):
        baseline = outcome["metrics"][name]
        assert baseline["scored"] is False and "r3d_18" in baseline["reason"] and baseline["average_mAP"] is None
        assert (root / "eval" / f"{name}_predictions.json").is_file()
    assert outcome["metrics"]["grizal"]["average_mAP"] is not None
