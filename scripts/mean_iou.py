"""Mean IoU of predicted masks against ground truth: python scripts/mean_iou.py -g GT_DIR -p PRED_DIR"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fcn.cli.mean_iou import cli  # noqa: E402

if __name__ == "__main__":
    cli()
