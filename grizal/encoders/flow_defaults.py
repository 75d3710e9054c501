"""Default settings of the classical optical flow methods, importable without OpenCV or torch: checking a params
file against a checkpoint reads them, and must not load the flow module to do so."""

FARNEBACK_DEFAULTS = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2}
