"""Dataset parsers: each turns a data set's own annotation files into the canonical index (ARCHITECTURE.md)."""

from pipeline.data.index import Index, Segment, VideoEntry

__all__ = ["Index", "Segment", "VideoEntry"]
