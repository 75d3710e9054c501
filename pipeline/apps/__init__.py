"""Applications over the wings: ``grizal localize`` and its timeline figure."""
