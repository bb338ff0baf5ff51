"""Training: config, data read straight from scenes and labels, losses, and the training loop."""
