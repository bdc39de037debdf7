#!/usr/bin/env python
"""Write the study report for training runs: see `python scripts/report.py --help` (logic in fcn/study/report.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from fcn.cli.report import cli

if __name__ == "__main__":
    cli()
