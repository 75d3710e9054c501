"""The paper's settings as config-group overrides: pipeline.composition.PAPER_SETTINGS, named as the resolved copies
kept in tests/data/resolved_configs/."""

from pipeline.composition import PAPER_SETTINGS

SETTINGS = PAPER_SETTINGS
