"""Prediction: batched chip inference and seamless stitching."""
