"""Frozen encoders with real open_clip / torchvision models built offline with random weights."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from test_video import frame_image, make_video
from torchvision.utils import flow_to_image

from grizal.encoders import (
    PRIOR_ARRAYS,
    ClipEncoder,
    ClipSpec,
    EncoderConfigError,
    FlowSpec,
    class_prompt,
    encode_class_priors,
    flow_frame_size,
    flow_to_color,
    load_clip,
    load_flow,
    register_offline_configs,
    resolve_device,
)
from grizal.encoders.clip import seeded_init
from pipeline.features.video import sampled_frames


@pytest.fixture(scope="module")
def tiny(one_torch_thread):
    return load_clip(ClipSpec(model="grizal-tiny", seed=0, precision="fp32"))


def picture(width=80, height=50, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))


def test_seeded_random_init_is_reproducible_and_leaves_the_global_rng(tiny):
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    again = load_clip(ClipSpec(model="grizal-tiny", seed=0, precision="fp32"))
    assert torch.equal(torch.rand(3), before)
    assert again.weights_sha256 == tiny.weights_sha256
    assert again.weights == "random-init seed 0"
    other = load_clip(ClipSpec(model="grizal-tiny", seed=1, precision="fp32"))
    assert other.weights_sha256 != tiny.weights_sha256
    assert tiny.dim == 128 and tiny.preprocess_cfg["size"] == (128, 128)


def test_preprocess_is_open_clips_own(tiny):
    _, _, reference = open_clip.create_model_and_transforms("grizal-tiny", pretrained=None)
    image = picture(97, 41)
    assert torch.equal(tiny.preprocess(image), reference(image))
    assert tiny.preprocess(image).shape == (3, 128, 128)
    # The split used by the extraction engine: PIL part per image, normalising per batch.
    prepared = np.stack([tiny.prepare(image), tiny.prepare(picture(64, 90, seed=3))])
    assert prepared.dtype == np.uint8 and prepared.shape == (2, 128, 128, 3)
    assert torch.equal(tiny.normalize(prepared)[1], reference(picture(64, 90, seed=3)))
    torch.testing.assert_close(tiny.encode_prepared(prepared), tiny.encode_images(tiny.normalize(prepared)))


def test_token_outputs_agree_with_pooled_embeddings(tiny):
    texts = ["a video of a circle", "a person slides left across the whole frame quickly"]
    tokens, mask = tiny.text_tokens(texts)
    lengths = mask.sum(1)
    assert tokens.shape == (2, int(lengths.max()), 128)
    assert lengths.tolist() == [len(tiny.tokenizer.encode(t)) + 2 for t in texts]  # + start and end tokens
    assert mask[1].all() and not mask[0, -1]
    pooled = tiny.encode_texts(texts, normalize=False)
    eot = tokens[torch.arange(2), lengths - 1]
    torch.testing.assert_close(eot, pooled, rtol=1e-4, atol=1e-5)
    pixels = torch.stack([tiny.preprocess(picture(seed=s)) for s in range(3)])
    image_tokens = tiny.image_tokens(pixels)
    assert image_tokens.shape == (3, 1 + 8 * 8, 128)  # class token + 64 patches of 16x16 at 128 px
    torch.testing.assert_close(image_tokens[:, 0], tiny.encode_images(pixels), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resnet_image_tokens_are_the_attention_pool_at_every_position(precision):
    register_offline_configs()
    register_offline_configs()  # idempotent
    assert {"grizal-tiny", "grizal-demo"} <= set(open_clip.list_models())
    demo = load_clip(ClipSpec(model="grizal-demo", seed=0, precision=precision))
    pixels = torch.stack([demo.preprocess(picture(seed=s)) for s in range(3)])
    tokens = demo.image_tokens(pixels)
    assert pixels.shape[-1] == 64 and tokens.shape == (3, 1 + 2 * 2, 128)  # mean query + a 2x2 map at 64 px
    assert tokens.dtype == torch.float32 and torch.isfinite(tokens).all()
    torch.testing.assert_close(tokens[:, 0], demo.encode_images(pixels), rtol=0, atol=0)
    assert not torch.allclose(tokens[:, 1], tokens[:, 2])  # each position's query attends differently


def test_local_checkpoints(tmp_path, tiny):
    state = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    torch.save(state, tmp_path / "tiny.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "tiny.safetensors"))
    for name in ("tiny.pt", "tiny.safetensors"):
        loaded = load_clip(ClipSpec(model="grizal-tiny", pretrained=str(tmp_path / name), seed=7, precision="fp32"))
        assert loaded.weights == str(tmp_path / name)
        assert loaded.weights_sha256 == tiny.weights_sha256  # the file's weights, not seed 7's


@pytest.mark.parametrize("spec, message", [
    (ClipSpec(model="ViT-X-99"), "unknown open_clip model"),
    (ClipSpec(model="ViT-B-32", pretrained="openai"), "ViT-B-32-quickgelu"),
    (ClipSpec(model="grizal-tiny", pretrained="weights/missing.pt"), "checkpoint file not found"),
    (ClipSpec(model="ViT-B-32", pretrained="no_such_tag"), "unknown pretrained tag"),
    (ClipSpec(precision="fp16"), "fp16 is for GPUs"),
    (ClipSpec(precision="int8"), "unknown precision"),
])
def test_bad_encoder_settings(spec, message):
    with pytest.raises(EncoderConfigError, match=message):
        load_clip(spec)


def test_devices():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(EncoderConfigError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_vit_b32_bf16_cast_matches_fp32(tmp_path):
    model = seeded_init(0, lambda: open_clip.create_model("ViT-B-32", pretrained=None))
    spec = ClipSpec(model="ViT-B-32", precision="fp32")
    fp32 = ClipEncoder(model, spec, "random-init seed 0", "not computed")
    bf16 = ClipEncoder(copy.deepcopy(model), replace(spec, precision="bf16"), "random-init seed 0", "not computed")
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    video = make_video(tmp_path / "v.mp4", frames=8, width=160, height=120)
    pixels = torch.stack([fp32.preprocess(f.image) for f in sampled_frames(video)[::3]])
    a, b = fp32.encode_images(pixels), bf16.encode_images(pixels)
    assert b.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(a, b).min() >= 0.999


def test_flow_colour_wheel():
    flow = torch.randn(3, 2, 20, 30) * 4
    colours = flow_to_color(flow)
    assert colours.shape == (3, 3, 20, 30) and colours.dtype == torch.uint8
    for i in range(3):  # torchvision's reference, one image at a time (it normalises over the whole batch)
        assert torch.equal(colours[i], flow_to_image(flow[i]))
    assert torch.equal(flow_to_color(np.zeros((2, 4, 4), np.float32)), torch.full((3, 4, 4), 255, dtype=torch.uint8))
    right = torch.zeros(2, 1, 1)
    right[0] = 1.0
    r, g, b = flow_to_color(right, max_magnitude=1.0)[:, 0, 0].tolist()
    assert r == 255 and g < 50 and b < 50  # rightward motion is red on the standard wheel
    darker = flow_to_color(right * 3, max_magnitude=1.0)[:, 0, 0]
    assert darker.max() < 255  # longer than max_magnitude: drawn darker


@pytest.mark.parametrize("method", ["farneback", "dis"])
def test_classical_flow_recovers_a_shift(method):
    flow = load_flow(FlowSpec(method=method))
    a, b = frame_image(0, 96, 64), frame_image(1, 96, 64)  # content moves right by 2 px
    uv = flow(a, b)
    assert uv.shape == (2, 64, 96) and uv.dtype == np.float32
    inner = uv[:, 16:-16, 16:-16]
    assert np.median(inner[0]) == pytest.approx(2.0, abs=0.5)
    assert abs(np.median(inner[1])) < 0.5


def test_raft_small_random_weights_and_local_file(tmp_path):
    spec = FlowSpec(method="raft_small", num_flow_updates=2, autocast="bf16")
    raft = load_flow(spec)
    assert raft.weights == "random-init seed 0"
    pair = torch.from_numpy(np.stack([frame_image(i, 128, 128) for i in range(3)])).permute(0, 3, 1, 2)
    flow = raft(pair[:2], pair[1:])
    assert flow.shape == (2, 2, 128, 128) and flow.dtype == torch.float32 and torch.isfinite(flow).all()
    torch.testing.assert_close(raft(pair[:2], pair[1:]), flow)
    plain = load_flow(replace(spec, autocast="none"))(pair[:2], pair[1:])
    assert plain.shape == flow.shape
    torch.save(raft.model.state_dict(), tmp_path / "raft.pth")
    again = load_flow(replace(spec, raft_weights=str(tmp_path / "raft.pth"), seed=5))
    assert again.weights_sha256 == raft.weights_sha256
    with pytest.raises(EncoderConfigError, match="unknown raft_small weights"):
        load_flow(replace(spec, raft_weights="C_T_SKHT_V9"))
    with pytest.raises(EncoderConfigError, match="unknown flow method"):
        load_flow(FlowSpec(method="lucas_kanade"))


def test_flow_frame_size():
    assert flow_frame_size(320, 240, 128) == (128, 96)
    assert flow_frame_size(64, 48, 128) == (64, 48)  # never upscaled for classical flow
    assert flow_frame_size(1920, 1080, 256, 8, 128) == (256, 144)
    assert flow_frame_size(64, 48, 128, 8, 128) == (168, 128)  # RAFT's minimum, aspect kept


def test_class_priors(tiny):
    texts = ["a red circle rises", "the circle moves up", "a circle going upwards"]
    images = [picture(seed=s) for s in range(3)]
    out = encode_class_priors(tiny, "circle rises", texts, images, "a video of a {}")
    k, S, E = out["joint"].shape
    n_text = tiny.text_tokens(texts)[0].shape[1]
    assert (k, E) == (3, 128) and n_text + 65 == S
    assert out["joint_mask"].shape == (3, S) and out["joint_mask"].dtype == bool
    assert (out["token_type"][:, :n_text] == 0).all() and (out["token_type"][:, n_text:] == 1).all()
    assert out["joint_mask"][:, n_text:].all()
    assert out["joint_mask"][:, :n_text].sum(1).tolist() == tiny.text_tokens(texts)[1].sum(1).tolist()
    assert out["name_tokens"].shape == (out["name_mask"].shape[0], 128) and out["name_mask"].all()
    assert np.linalg.norm(out["name_embedding"]) == pytest.approx(1.0, abs=1e-5)
    assert np.linalg.norm(out["text_embedding"], axis=1) == pytest.approx(np.ones(3), abs=1e-5)
    expected = tiny.encode_texts(["a video of a circle rises"])[0].numpy()
    assert out["name_embedding"] == pytest.approx(expected, abs=1e-6)
    # each prior image's pooled CLIP embedding, normalised: what the priors-prototype baseline averages
    pooled = tiny.encode_images(torch.stack([tiny.preprocess(image) for image in images])).numpy()
    assert out["image_embedding"].shape == (3, 128) and out["image_embedding"].dtype == np.float32
    assert out["image_embedding"] == pytest.approx(pooled / np.linalg.norm(pooled, axis=1, keepdims=True), abs=1e-5)
    assert set(out) == set(PRIOR_ARRAYS)
    with pytest.raises(ValueError, match="pairs"):
        encode_class_priors(tiny, "x", texts, images[:2], "{}")
    assert class_prompt("a video of a person {class}", "jumping") == "a video of a person jumping"
    assert class_prompt("{name}!", "run") == "run!"
