"""Raster and file input/output: the only place that takes paths."""
