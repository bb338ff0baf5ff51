"""Flows: whole commands assembled from the layers below (one scene, batches, Dask)."""
