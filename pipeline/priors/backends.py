"""What a text or image backend is, and how one is made from the settings.

A backend turns one request into one result or raises a pipeline.priors.faults.ItemError; retries, caching,
validation and the manifest are the runner's job, so every backend gets them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from pipeline.priors.config import GenerateConfig
from pipeline.priors.faults import Usage


@dataclass(frozen=True)
class TextRequest:
    class_name: str
    action: str  # the class name as it reads in a sentence
    k: int
    seed: int
    messages: list[dict[str, str]]  # the full prompt, as chat messages
    attempt: int = 0  # > 0 on a retry after malformed output: local backends vary their sampling with it


@dataclass
class TextResult:
    sentences: list[str]
    usage: Usage = field(default_factory=Usage)
    request_id: str | None = None


@dataclass(frozen=True)
class ImageRequest:
    class_name: str
    action: str
    sentence: str  # the description this image is paired with
    prompt: str  # the full image prompt, built from the sentence
    index: int
    seed: int  # this image's own seed
    attempt: int = 0


@dataclass
class ImageResult:
    image: Image.Image  # any mode and size: the runner validates and normalises it
    usage: Usage = field(default_factory=Usage)
    request_id: str | None = None


class TextBackend(Protocol):
    name: str
    model: str
    remote: bool

    def messages(self, action: str, k: int) -> list[dict[str, str]]: ...

    def key_fields(self) -> dict[str, Any]:
        """Settings besides model and prompt that change the output (e.g. sampling temperature)."""
        ...

    def generate(self, request: TextRequest) -> TextResult: ...

    def estimate(self, messages: list[dict[str, str]], k: int) -> Usage: ...


class ImageBackend(Protocol):
    name: str
    model: str
    remote: bool
    uses_prompt: bool  # False: the prompt does not change the image, so it is left out of the cache key

    def key_fields(self, request: ImageRequest) -> dict[str, Any]: ...

    def generate(self, request: ImageRequest) -> ImageResult: ...

    def estimate(self) -> Usage: ...


def make_text_backend(cfg: GenerateConfig) -> TextBackend:
    """Heavy libraries (openai, torch, transformers) are imported only by the backend that needs them."""
    if cfg.text_backend == "offline":
        from pipeline.priors.text_offline import OfflineTextBackend

        return OfflineTextBackend(cfg)
    if cfg.text_backend == "openai":
        from pipeline.priors.text_openai import OpenAITextBackend

        return OpenAITextBackend(cfg)
    if cfg.text_backend == "hf":
        from pipeline.priors.text_hf import HFTextBackend

        return HFTextBackend(cfg)
    raise ValueError(f"unknown text backend {cfg.text_backend!r}")


def make_image_backend(cfg: GenerateConfig) -> ImageBackend:
    if cfg.image_backend == "offline":
        from pipeline.priors.image_offline import OfflineImageBackend

        return OfflineImageBackend(cfg)
    if cfg.image_backend == "openai":
        from pipeline.priors.image_openai import OpenAIImageBackend

        return OpenAIImageBackend(cfg)
    if cfg.image_backend == "diffusers":
        from pipeline.priors.image_diffusers import DiffusersImageBackend

        return DiffusersImageBackend(cfg)
    if cfg.image_backend == "openworld":
        from pipeline.priors.image_openworld import OpenWorldImageBackend

        return OpenWorldImageBackend(cfg)
    raise ValueError(f"unknown image backend {cfg.image_backend!r}")
