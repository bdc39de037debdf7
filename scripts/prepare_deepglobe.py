#!/usr/bin/env python
"""Cut DeepGlobe Land Cover into course tiles: see `--help`; the logic lives in fcn/deepglobe.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from fcn.cli.prepare_deepglobe import cli  # noqa: E402

if __name__ == "__main__":
    cli()
