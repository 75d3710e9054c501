"""The features' wing: Zarr stores, video decoding, the extraction engine, encoder settings, importers, the
priors store and the model's inputs read from a feature folder."""
