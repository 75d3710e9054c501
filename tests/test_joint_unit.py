"""The joint unit (extract.priors.joint_unit): concat, gafnet (parameter-free global Fourier fusion) and pooled."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from grizal.encoders.clip import ClipSpec, load_clip
from grizal.encoders.priors import IMAGE_TOKEN, JOINT_UNITS, TEXT_TOKEN, encode_class_priors, fourier_mix
from grizal.model import build_model
from pipeline.common import UserError
from pipeline.features.priors import PriorEncoder, run_priors
from pipeline.features.settings import configured_settings, extract_config
from pipeline.features.store import read_priors, read_store_attrs

TEXTS = ["a red square slides to the left", "a small red square moves quickly left across the frame"]
TEMPLATE = "a video of a {}"


@pytest.fixture(scope="module")
def clip(one_torch_thread):
    return load_clip(ClipSpec(model="grizal-tiny", seed=0, precision="fp32"))


def picture(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8))


def encode(clip, unit: str, images=None) -> dict[str, np.ndarray]:
    return encode_class_priors(clip, "slide", TEXTS, images or [picture(0), picture(1)], TEMPLATE, unit)


def test_fourier_mix_is_the_parameter_free_global_fourier_layer():
    x = torch.randn(7, 12, generator=torch.Generator().manual_seed(0))
    mixed = np.fft.fft2(x.double().numpy(), norm="ortho").real + x.double().numpy()
    expected = (mixed - mixed.mean(-1, keepdims=True)) / np.sqrt(mixed.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(fourier_mix(x).numpy(), expected, atol=1e-5)
    x2 = x.clone()
    x2[-1] += 1.0  # one token changed: every token's output changes (global mixing)
    assert (fourier_mix(x2) - fourier_mix(x)).abs().amax(dim=1).min() > 1e-4


def test_concat_keeps_the_modalities_apart_and_gafnet_fuses_them(clip):
    concat, gaf = encode(clip, "concat"), encode(clip, "gafnet")
    assert concat["joint"].shape == gaf["joint"].shape
    np.testing.assert_array_equal(concat["joint_mask"], gaf["joint_mask"])
    np.testing.assert_array_equal(concat["token_type"], gaf["token_type"])
    assert not np.allclose(concat["joint"], gaf["joint"])
    assert np.all(gaf["joint"][~gaf["joint_mask"]] == 0)  # padding stays padding
    text = (concat["token_type"] == TEXT_TOKEN) & concat["joint_mask"]
    # Another image for the pairs: concat's text tokens do not move, gafnet's do (the pair is fused).
    other_concat, other_gaf = (encode(clip, unit, [picture(5), picture(6)]) for unit in ("concat", "gafnet"))
    np.testing.assert_array_equal(other_concat["joint"][text], concat["joint"][text])
    assert np.abs(other_gaf["joint"][text] - gaf["joint"][text]).max() > 1e-3
    # Same inputs, same features: a cached feature.
    np.testing.assert_array_equal(encode(clip, "gafnet")["joint"], gaf["joint"])


def test_pooled_is_one_sentence_and_one_image_embedding_per_pair(clip):
    images = [picture(0), picture(1)]
    pooled = encode(clip, "pooled", images)
    assert pooled["joint"].shape == (2, 2, clip.dim)
    assert pooled["joint_mask"].all()
    assert (pooled["token_type"] == [[TEXT_TOKEN, IMAGE_TOKEN]] * 2).all()
    np.testing.assert_allclose(pooled["joint"][:, 0], clip.encode_texts(TEXTS, normalize=False).numpy(), atol=1e-5)
    pixels = torch.stack([clip.preprocess(image) for image in images])
    np.testing.assert_allclose(pooled["joint"][:, 1], clip.image_tokens(pixels)[:, 0].numpy(), atol=1e-4)


@pytest.mark.parametrize("unit", JOINT_UNITS)
def test_the_model_reads_every_unit(clip, unit):
    arrays = encode(clip, unit)
    priors = {key: torch.from_numpy(np.asarray(arrays[key]))[None] for key in
              ("joint", "joint_mask", "token_type", "name_tokens", "name_mask")}
    priors["token_type"] = priors["token_type"].long()
    model = build_model({"width": 16, "heads": 2, "vle_layers": 1, "ofe_layers": 1, "k": 2, "rgb_dim": clip.dim,
                         "flow_dim": clip.dim, "prior_dim": clip.dim}).eval()
    out = model(torch.randn(1, 8, clip.dim), torch.randn(1, 8, clip.dim), priors)
    assert out["probs"].shape == (1, 8) and torch.isfinite(out["probs"]).all()


def test_unknown_unit_is_refused(clip):
    with pytest.raises(ValueError, match="unknown joint unit 'fnet'"):
        encode(clip, "fnet")
    with pytest.raises(UserError, match="extract.priors.joint_unit: expected one of concat, gafnet, pooled"):
        extract_config({"extract": {"priors": {"joint_unit": "fnet"}}})


def test_the_store_records_its_unit_and_a_change_rebuilds_it(clip, tmp_path, capsys):
    (tmp_path / "images").mkdir()
    for i in range(2):
        picture(i).save(tmp_path / "images" / f"{i}.png")
    priors_json = tmp_path / "priors.json"
    priors_json.write_text(json.dumps({"k": 2, "classes": {"slide": {
        "texts": TEXTS, "images": ["images/0.png", "images/1.png"]}}}))
    store = tmp_path / "priors.zarr"
    run_priors(priors_json, store, PriorEncoder.of(clip), TEMPLATE)
    attrs = read_store_attrs(store)
    assert attrs["joint_unit"] == attrs["settings"]["joint_unit"] == "concat"
    run_priors(priors_json, store, PriorEncoder.of(clip), TEMPLATE, joint_unit="pooled")
    assert "settings changed" in capsys.readouterr().out
    assert read_store_attrs(store)["joint_unit"] == "pooled"
    assert read_priors(store, ["slide"])["slide"]["joint"].shape == (2, 2, clip.dim)
    with pytest.raises(UserError, match="unknown joint unit"):
        run_priors(priors_json, store, PriorEncoder.of(clip), TEMPLATE, joint_unit="fnet")


def test_the_unit_is_an_encoder_setting_a_checkpoint_is_checked_against():
    cfg = extract_config({"extract": {"priors": {"joint_unit": "gafnet"}}})
    assert configured_settings(cfg, use_flow=False)["priors.joint_unit"] == "gafnet"
    assert extract_config({})["priors"]["joint_unit"] == "concat"
