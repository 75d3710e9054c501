"""Checks every generated item passes before it is cached: k sentences of sane length, decodable RGB images."""

from __future__ import annotations

import io
import re

from PIL import Image, UnidentifiedImageError

from pipeline.priors.faults import MalformedOutput

_LEADING_MARKER = re.compile(r"^\s*(?:[-*•]+\s|\(?\d{1,2}[.):]\s)\s*")


def clean_sentence(text: str) -> str:
    """Strip list markers, wrapping quotes and repeated white space."""
    text = " ".join(text.split())
    text = _LEADING_MARKER.sub("", text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'“”":
        text = text[1:-1].strip()
    return text.strip("“”").strip()


def word_count(text: str) -> int:
    return len(text.split())


def check_sentences(sentences: list, k: int, min_words: int, max_words: int) -> list[str]:
    """The k cleaned sentences, or MalformedOutput saying what is wrong with them."""
    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        raise MalformedOutput("expected a list of strings")
    cleaned = [clean_sentence(s) for s in sentences]
    if len(cleaned) != k:
        raise MalformedOutput(f"expected {k} sentences, got {len(cleaned)}")
    for i, sentence in enumerate(cleaned):
        words = word_count(sentence)
        if words < min_words:
            raise MalformedOutput(f"sentence {i + 1} has {words} words (at least {min_words} expected)")
        if words > max_words:
            raise MalformedOutput(f"sentence {i + 1} has {words} words (at most {max_words} expected)")
    if len({s.lower() for s in cleaned}) != len(cleaned):
        raise MalformedOutput("the sentences repeat each other")
    return cleaned


def decode_image(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise MalformedOutput(f"image does not decode ({err})") from None
    return image


def to_fixed_rgb(image: Image.Image, size: int) -> Image.Image:
    """An RGB size x size image: transparency over black, centre-cropped to a square, then resized."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    image = image.convert("RGB")
    width, height = image.size
    if width == 0 or height == 0:
        raise MalformedOutput("image is empty")
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    if (width, height) != (side, side):
        image = image.crop((left, top, left + side, top + side))
    if side != size:
        image = image.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
