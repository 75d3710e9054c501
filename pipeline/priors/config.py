"""Settings of the generate stage: built-in defaults < params.yaml `generate` section < CLI options. The keys,
defaults and ranges are the `generate` params model's (``pipeline.params_schema.GenerateParams``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.common import UserError
from pipeline.params_schema import (
    DEFAULT_HF_PROMPT,
    DEFAULT_IMAGE_PROMPT,
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_TEXT_PROMPT,
    IMAGE_BACKENDS,
    TEXT_BACKENDS,
    GenerateParams,
    check_section,
)

__all__ = ["DEFAULT_HF_PROMPT", "DEFAULT_IMAGE_MODELS", "DEFAULT_IMAGE_PROMPT", "DEFAULT_SYSTEM_PROMPT",
           "DEFAULT_TEXT_MODELS", "DEFAULT_TEXT_PROMPT", "IMAGE_BACKENDS", "TEXT_BACKENDS", "GenerateConfig",
           "build_config"]

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


class GenerateConfig(GenerateParams):
    """The generate settings: the ``generate`` params model, plus the models each backend defaults to."""

    @property
    def resolved_text_model(self) -> str:
        return self.text_model or DEFAULT_TEXT_MODELS[self.text_backend]

    @property
    def resolved_image_model(self) -> str:
        return self.image_model or DEFAULT_IMAGE_MODELS[self.image_backend]


def build_config(params_section: dict[str, Any] | None = None, params_path: str | Path | None = None,
                 overrides: dict[str, Any] | None = None) -> GenerateConfig:
    """A params file's `generate` section (read from ``params_path``) and CLI overrides (None = not given) over the
    defaults. A bad value is one line naming the file, or the option (``--k``) for an override."""
    where = str(params_path) if params_path is not None else "command line"
    values = dict(params_section or {})
    check_section({"generate": values}, "generate", where)
    given = {name: value for name, value in (overrides or {}).items() if value is not None}
    try:
        return check_section({"generate": {**values, **given}}, "generate", where, GenerateConfig)
    except UserError as err:
        key = err.problem.split(":", 1)[0].removeprefix("generate.")
        option = next((f"--{name.replace('_', '-')}" for name in given if key == name), None)
        raise UserError(option or err.where, err.problem) from None
