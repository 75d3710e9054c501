"""The hf text and diffusers image backends with tiny random-weight models built offline, loaded from folders."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from pipeline.common import UserError
from pipeline.priors.config import build_config
from pipeline.priors.generation import run

torch = pytest.importorskip("torch")

WORDS = ("person", "athlete", "jumps", "runs", "throws", "ball", "field", "court", "water", "board", "quickly",
         "slowly", "high", "over", "under", "the", "a", "with", "crowd", "watching", "sunny", "day", "indoor", "arena")


def clip_bpe_vocab(n_merges: int = 2000) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP BPE vocabulary cut from open_clip's bundled merges: byte symbols, their end-of-word forms, the
    first merges, then the two special tokens (the layout of CLIP's own vocabulary)."""
    import open_clip

    path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1:1 + n_merges]]
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    symbols = printable + [256 + i for i in range(256 - len(printable))]
    base = [chr(code) for code in symbols]
    tokens = base + [b + "</w>" for b in base] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> Path:
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab, merges = clip_bpe_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, projection_dim=32, bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"],
    ))
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=8, attention_head_dim=8,
    )
    vae = AutoencoderKL(block_out_channels=[16, 32], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        norm_num_groups=8, sample_size=32)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipeline = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    folder = tmp_path_factory.mktemp("tiny-sd")
    pipeline.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    """A 2-layer GPT-2 over a word-level vocabulary, without an end-of-text token, so every sample is exactly
    max_new_tokens words."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<pad>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(vocab), n_positions=128, n_embd=32, n_layer=2, n_head=4,
                        bos_token_id=None, eos_token_id=None, pad_token_id=1)
    model = GPT2LMHeadModel(config)
    folder = tmp_path_factory.mktemp("tiny-lm")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def generate(out: Path, **overrides) -> tuple[int, dict]:
    cfg = build_config(None, overrides={"out": out, "k": 2, "image_size": 32, "seed": 3, **overrides})
    code = run(cfg, ["BasketballDunk"], console=Console(file=io.StringIO()))
    return code, json.loads((out / "priors.json").read_text())


def pixels(out: Path, priors: dict) -> list[np.ndarray]:
    return [np.asarray(Image.open(out / p)) for p in priors["classes"]["BasketballDunk"]["images"]]


def test_diffusers_same_seed_same_pixels(tiny_sd, tmp_path):
    settings = {"image_backend": "diffusers", "image_model": str(tiny_sd), "diffusion_steps": 2,
                "diffusion_resolution": 32, "device": "cpu"}
    code_a, priors_a = generate(tmp_path / "a", **settings)
    code_b, priors_b = generate(tmp_path / "b", **settings)
    code_c, priors_c = generate(tmp_path / "c", **{**settings, "seed": 4})
    assert code_a == code_b == code_c == 0
    first, again, other_seed = pixels(tmp_path / "a", priors_a), pixels(tmp_path / "b", priors_b), pixels(
        tmp_path / "c", priors_c)
    assert all(im.shape == (32, 32, 3) for im in first)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not np.array_equal(first[0], first[1])  # one generator per image, seeded differently
    assert not np.array_equal(first[0], other_seed[0])


def test_hf_text_same_seed_same_sentences(tiny_lm, tmp_path):
    settings = {"text_backend": "hf", "text_model": str(tiny_lm), "hf_max_new_tokens": 12, "min_words": 3,
                "device": "cpu"}
    code_a, priors_a = generate(tmp_path / "a", **settings)
    code_b, priors_b = generate(tmp_path / "b", **settings)
    code_c, priors_c = generate(tmp_path / "c", **{**settings, "seed": 4})
    assert code_a == code_b == code_c == 0
    texts = priors_a["classes"]["BasketballDunk"]["texts"]
    assert texts == priors_b["classes"]["BasketballDunk"]["texts"]
    assert texts != priors_c["classes"]["BasketballDunk"]["texts"]
    assert len(texts) == 2 and texts[0] != texts[1]
    # Sampled words of the tiny vocabulary; special tokens (<unk>, <pad>) are dropped when decoding.
    assert all(3 <= len(t.split()) <= 12 and set(t.split()) <= set(WORDS) for t in texts)


def test_a_model_that_cannot_be_loaded_is_a_user_error(tmp_path):
    with pytest.raises(UserError) as err:
        generate(tmp_path, image_backend="diffusers", image_model=str(tmp_path / "no-such-model"), device="cpu")
    assert err.value.where == "image_model" and "no-such-model" in err.value.problem
