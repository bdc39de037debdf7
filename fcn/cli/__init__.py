"""The commands: one module per command (its argparse parser and ``main``), and what they share.

Its public API is ``__all__``: the commands, each a module whose ``main(argv)`` returns the exit code.
"""

__all__ = ["export", "mean_iou", "predict", "prepare_deepglobe", "report", "train"]
