"""The commands: one module per command (its argparse parser and ``main``), and what they share."""
