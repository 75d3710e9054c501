"""GRIZAL: generative prior-guided zero-shot temporal action localization."""

__version__ = "0.1.0"
