"""The model: FCN builders, ImageNet weights, the loss, checkpoints, numeric precision."""
