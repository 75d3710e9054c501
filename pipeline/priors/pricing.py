"""Estimated OpenAI prices, used for the manifest's and the summary's cost figures.

These are ESTIMATES in US dollars copied from OpenAI's public price list (2024-2025); the bill is what counts.
Update them here when prices change. A model not in these tables gets cost None ("unknown").
"""

from __future__ import annotations

from pipeline.priors.faults import Usage

# (input, output) dollars per million tokens.
TEXT_PRICES_PER_MTOK = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
}

# Dollars per image by (model, quality, size). quality None = the model's default.
IMAGE_PRICES = {
    ("dall-e-3", "standard", "1024x1024"): 0.040,
    ("dall-e-3", "standard", "1024x1792"): 0.080,
    ("dall-e-3", "standard", "1792x1024"): 0.080,
    ("dall-e-3", "hd", "1024x1024"): 0.080,
    ("dall-e-3", "hd", "1024x1792"): 0.120,
    ("dall-e-3", "hd", "1792x1024"): 0.120,
    ("dall-e-2", "standard", "256x256"): 0.016,
    ("dall-e-2", "standard", "512x512"): 0.018,
    ("dall-e-2", "standard", "1024x1024"): 0.020,
    ("gpt-image-1", "low", "1024x1024"): 0.011,
    ("gpt-image-1", "low", "1024x1536"): 0.016,
    ("gpt-image-1", "low", "1536x1024"): 0.016,
    ("gpt-image-1", "medium", "1024x1024"): 0.042,
    ("gpt-image-1", "medium", "1024x1536"): 0.063,
    ("gpt-image-1", "medium", "1536x1024"): 0.063,
    ("gpt-image-1", "high", "1024x1024"): 0.167,
    ("gpt-image-1", "high", "1024x1536"): 0.25,
    ("gpt-image-1", "high", "1536x1024"): 0.25,
}
# The quality each model bills at when none is sent ("auto" for gpt-image-1 is estimated as medium).
DEFAULT_IMAGE_QUALITY = {"dall-e-3": "standard", "dall-e-2": "standard", "gpt-image-1": "medium"}


def _family(model: str, families) -> str | None:
    """'gpt-4o-2024-08-06' -> 'gpt-4o' (the longest known name the model id starts with)."""
    matches = [name for name in families if model == name or model.startswith(name + "-")]
    return max(matches, key=len) if matches else None


def text_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    family = _family(model, TEXT_PRICES_PER_MTOK)
    if family is None:
        return None
    price_in, price_out = TEXT_PRICES_PER_MTOK[family]
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1e6


def image_cost(model: str, quality: str | None, size: str, n: int = 1) -> float | None:
    family = _family(model, {m for m, _, _ in IMAGE_PRICES})
    if family is None:
        return None
    if quality in (None, "auto"):
        quality = DEFAULT_IMAGE_QUALITY[family]
    price = IMAGE_PRICES.get((family, quality, size))
    return None if price is None else price * n


def estimate_text_usage(model: str, prompt_chars: int, k: int, target_words: int) -> Usage:
    """A dry-run guess: ~4 characters a prompt token, ~1.4 tokens a word, plus the JSON wrapping."""
    prompt_tokens = prompt_chars // 4 + 20
    completion_tokens = int(k * target_words * 1.4) + 10 * k
    return Usage(prompt_tokens, completion_tokens, 0, text_cost(model, prompt_tokens, completion_tokens))
