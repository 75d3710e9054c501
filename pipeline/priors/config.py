"""Settings of the generate stage: built-in defaults < params.yaml `generate` section < CLI options."""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.common import UserError

TEXT_BACKENDS = ("offline", "openai", "hf")
IMAGE_BACKENDS = ("offline", "openai", "diffusers", "openworld")

# The model each backend uses when none is named. The offline ones are versions of our own generators, so a
# change to the templates or the renderer gets new cache keys by bumping them.
DEFAULT_TEXT_MODELS = {
    "offline": "offline-templates-v2",
    "openai": "gpt-4o",
    "hf": "meta-llama/Llama-2-7b-chat-hf",
}
DEFAULT_IMAGE_MODELS = {
    "offline": "offline-renderer-v2",
    "openai": "dall-e-3",
    "diffusers": "stabilityai/stable-diffusion-xl-base-1.0",
    "openworld": "local-folder",
}

DEFAULT_SYSTEM_PROMPT = (
    "You write short, concrete visual descriptions of human actions for a video understanding model."
)
DEFAULT_TEXT_PROMPT = (
    'Describe the action "{action}" in {k} different sentences of about {words} words each. Each sentence '
    "describes what a video of someone doing this action shows: the person, their movements, the objects "
    "involved and the setting. Vary the setting and viewpoint from sentence to sentence. Do not number them."
)
# Local LMs are asked for one sentence at a time; k samples give the k descriptions.
DEFAULT_HF_PROMPT = (
    'Describe what a video of the action "{action}" shows, in one sentence of about {words} words.\n'
    "Description:"
)
DEFAULT_IMAGE_PROMPT = "A realistic photograph of {action}: {sentence}"

_PROMPT_FIELDS = {
    "text_system_prompt": set(),
    "text_prompt": {"action", "k", "words"},
    "hf_prompt": {"action", "words"},
    "image_prompt": {"action", "sentence"},
}


@dataclass(frozen=True)
class GenerateConfig:
    out: Path = Path("cache/priors")
    store: Path | None = None  # the content-addressed item cache; None: the out folder itself
    index: Path = Path("cache/prepare/index.json")
    text_backend: str = "offline"
    image_backend: str = "offline"
    text_model: str | None = None
    image_model: str | None = None
    k: int = 4
    seed: int = 0
    image_size: int = 224
    concurrency: int = 8
    max_retries: int = 4
    malformed_retries: int = 2
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    timeout_s: float = 60.0
    target_words: int = 30
    min_words: int = 6
    max_words: int = 60
    text_system_prompt: str = DEFAULT_SYSTEM_PROMPT
    text_prompt: str = DEFAULT_TEXT_PROMPT
    hf_prompt: str = DEFAULT_HF_PROMPT
    image_prompt: str = DEFAULT_IMAGE_PROMPT
    openai_image_size: str = "1024x1024"
    openai_image_quality: str | None = None  # None: the model's default (dall-e-3: standard)
    hf_max_new_tokens: int = 60
    hf_temperature: float = 0.9
    hf_top_p: float = 0.95
    diffusion_steps: int = 30
    guidance_scale: float = 7.5
    diffusion_resolution: int | None = None
    negative_prompt: str = ""
    device: str = "auto"
    openworld_dir: Path | None = None

    @property
    def resolved_text_model(self) -> str:
        return self.text_model or DEFAULT_TEXT_MODELS[self.text_backend]

    @property
    def resolved_image_model(self) -> str:
        return self.image_model or DEFAULT_IMAGE_MODELS[self.image_backend]


_FIELDS = {f.name: f for f in dataclasses.fields(GenerateConfig)}
_PATH_FIELDS = {"out", "store", "index", "openworld_dir"}
_INT_FIELDS = {"k", "seed", "image_size", "concurrency", "max_retries", "malformed_retries", "target_words",
               "min_words", "max_words", "hf_max_new_tokens", "diffusion_steps", "diffusion_resolution"}
_FLOAT_FIELDS = {"backoff_s", "backoff_max_s", "timeout_s", "hf_temperature", "hf_top_p", "guidance_scale"}
_OPTIONAL_FIELDS = {"text_model", "image_model", "diffusion_resolution", "openworld_dir", "openai_image_quality",
                    "store"}


def _coerce(name: str, value: Any, where: str) -> Any:
    if value is None:
        if name in _OPTIONAL_FIELDS:
            return None
        raise UserError(where, f"'{name}' must not be empty")
    if name in _PATH_FIELDS:
        if not isinstance(value, str | Path):
            raise UserError(where, f"'{name}' must be a path, got {value!r}")
        return Path(value)
    if name in _INT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(where, f"'{name}' must be an integer, got {value!r}")
        return value
    if name in _FLOAT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserError(where, f"'{name}' must be a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise UserError(where, f"'{name}' must be a string, got {value!r}")
    return value


def _check_template(name: str, template: str, where: str) -> None:
    allowed = _PROMPT_FIELDS[name]
    try:
        used = {fname for _, fname, _, _ in string.Formatter().parse(template) if fname is not None}
    except ValueError as err:
        raise UserError(where, f"'{name}' is not a valid template ({err})") from None
    unknown = used - allowed
    if unknown:
        names = ", ".join("{" + u + "}" for u in sorted(unknown))
        known = ", ".join("{" + a + "}" for a in sorted(allowed)) or "none"
        raise UserError(where, f"'{name}' uses unknown placeholder {names} (allowed: {known})")


def _validate(cfg: GenerateConfig, where: str) -> None:
    if cfg.text_backend not in TEXT_BACKENDS:
        raise UserError(where, f"unknown text backend '{cfg.text_backend}' (choose from {', '.join(TEXT_BACKENDS)})")
    if cfg.image_backend not in IMAGE_BACKENDS:
        raise UserError(
            where, f"unknown image backend '{cfg.image_backend}' (choose from {', '.join(IMAGE_BACKENDS)})"
        )
    positive = ("k", "image_size", "concurrency", "target_words", "min_words", "max_words", "hf_max_new_tokens",
                "diffusion_steps", "timeout_s")
    for name in positive:
        if getattr(cfg, name) <= 0:
            raise UserError(where, f"'{name}' must be positive, got {getattr(cfg, name)}")
    for name in ("max_retries", "malformed_retries", "backoff_s", "backoff_max_s"):
        if getattr(cfg, name) < 0:
            raise UserError(where, f"'{name}' must not be negative, got {getattr(cfg, name)}")
    if cfg.min_words > cfg.max_words:
        raise UserError(where, f"'min_words' ({cfg.min_words}) is larger than 'max_words' ({cfg.max_words})")
    if cfg.image_size > 4096:
        raise UserError(where, f"'image_size' {cfg.image_size} is too large (at most 4096)")
    for name in _PROMPT_FIELDS:
        _check_template(name, getattr(cfg, name), where)
    if cfg.image_backend == "openworld" and cfg.openworld_dir is None:
        raise UserError(where, "the openworld image backend needs 'openworld_dir' (a folder with one folder per class)")


def build_config(params_section: dict[str, Any] | None = None, params_path: str | Path | None = None,
                 overrides: dict[str, Any] | None = None) -> GenerateConfig:
    """Merge a params file's `generate` section (read from ``params_path``; the stages check it first with
    ``pipeline.params_schema``) and CLI overrides (None = not given) over the defaults."""
    values: dict[str, Any] = {}
    where = str(params_path) if params_path is not None else "command line"
    for name, value in (params_section or {}).items():
        if name not in _FIELDS:
            raise UserError(where, f"unknown key '{name}' (known: {', '.join(sorted(_FIELDS))})")
        values[name] = _coerce(name, value, where)
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _coerce(name, value, f"--{name.replace('_', '-')}")
    cfg = GenerateConfig(**values)
    _validate(cfg, where if params_section is not None else "command line")
    return cfg
