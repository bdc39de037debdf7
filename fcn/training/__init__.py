"""Training a run: the trainer and its callbacks, optimizer, recipes and config, the run directory."""
