"""Generative priors: k sentences and k paired images per action class, made by pluggable backends and cached
content-addressed (see pipeline/generate.py for the stage and its command line)."""

from pipeline.priors.cache import PriorCache
from pipeline.priors.config import GenerateConfig, build_config
from pipeline.priors.names import file_slug, humanize
from pipeline.priors.runner import PriorRunner, RunReport, priors_entries

__all__ = ["GenerateConfig", "PriorCache", "PriorRunner", "RunReport", "build_config", "humanize",
           "priors_entries", "file_slug"]
