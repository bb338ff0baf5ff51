"""Inference: band matching, batched chip inference, and the predict pipeline."""
