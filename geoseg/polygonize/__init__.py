"""Polygonize: class maps to polygons (region maths, strips, measures, the file-writing API)."""
