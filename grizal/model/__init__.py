"""The learnable GRIZAL model (no I/O): build it with `build_model(params["model"])`."""

from grizal.model.config import ConfigError, ModelConfig
from grizal.model.factory import build_model, parameter_summary
from grizal.model.grizal import GRIZAL

__all__ = ["GRIZAL", "ConfigError", "ModelConfig", "build_model", "parameter_summary"]
