"""DVC stages of the GRIZAL pipeline; each module is runnable as ``python -m pipeline.<stage>``."""
