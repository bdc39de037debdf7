"""Cross-validated recipe study: k folds of contiguous id blocks, every candidate x model on every fold.

    python bench/cv.py --data DATA_DIR --out STUDY_DIR --candidate default= \\
        --candidate "staged@fcn8s=--init-from {runs}/default-fcn32s-f{fold}" \\
        --candidate "skips@fcn8s=--skip-scaling" --plot curves.png
    python bench/cv.py --data DATA_DIR --out STUDY_DIR --candidate ... --table-only   # summarise only

Folds: the tiles' numeric ids are grouped by ``id // 4`` (consecutive ids are the quadrants of one
DeepGlobe image and stay on one side), and the groups are cut into ``--folds`` contiguous blocks; for
200 tiles and 3 folds: 0000-0067, 0068-0135, 0136-0199. Fold ``f`` validates on block ``f`` (every
epoch, at the tiles' own size) and trains on the rest; its split is linked under ``STUDY_DIR/split{f}``.

Candidates: ``NAME[@MODEL,MODEL]=TRAIN_ARGS``; the arguments go to ``scripts/train.py`` after the
common ones (``--epochs`` ... ``--seed`` below, then anything after ``--``), with ``{runs}`` replaced by
``STUDY_DIR/runs``, ``{fold}`` by the fold number and ``{seed_tag}`` by the run's seed tag (below). A
run waits for the runs it names there (e.g. staged training from the same fold's FCN32s:
``{runs}/default-fcn32s-f{fold}{seed_tag}``). Every candidate x model x fold is trained once per
``--seeds`` seed. Runs live in ``STUDY_DIR/runs/NAME-MODEL-fFOLD`` (seed 0) or
``NAME-MODEL-fFOLD-sSEED`` (the seed tag); a finished run is kept, an interrupted one resumed, and one
whose directory another process holds locked is left to it (and counts as one of the ``--jobs``
running at once).

The table: per candidate x model, over its finished runs (folds x seeds), the mean ± sd of the mean
validation mIoU of the last three epochs, the mean best, the per-class IoU (mean of the last three
epochs), the largest epoch-to-epoch drop after ``--after`` (worst run), and the minutes per run; then
every run's figures, unfinished ones marked. ``--plot`` draws the mean curve over the finished runs
with their range shaded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.quality_split import SPLIT_MARKER, make_split  # noqa: E402
from bench.runs_table import IOU_COLUMNS, group_key, plot_curves, summarise  # noqa: E402
from fcn import MODEL_NAMES  # noqa: E402
from fcn.cli.common import run_cli  # noqa: E402
from fcn.core.errors import InputError  # noqa: E402
from fcn.core.files import write_text_atomic  # noqa: E402
from fcn.core.palette import CLASS_NAMES, SCORED_CLASSES  # noqa: E402
from fcn.model.runfiles import RunFiles  # noqa: E402

IMAGE_GROUP = 4  # consecutive ids: the four quadrants of one DeepGlobe image


def fold_blocks(ids: list[str], folds: int, group: int = IMAGE_GROUP) -> list[list[str]]:
    """Cut numeric ids into ``folds`` contiguous blocks whose boundaries never split an ``id // group``
    group (block ``i`` ends before group ``ceil((i + 1) * groups / folds)``)."""
    if not all(i.isdigit() for i in ids):
        raise InputError("cross-validation folds need numeric tile ids")
    ids = sorted(ids, key=int)
    groups = sorted({int(i) // group for i in ids})
    if folds < 2 or folds > len(groups):
        raise InputError(f"--folds {folds}: need 2 to {len(groups)} folds for {len(groups)} image groups")
    cuts = [math.ceil(k * len(groups) / folds) for k in range(folds + 1)]
    return [[i for i in ids if groups[cuts[k]] <= int(i) // group <= groups[cuts[k + 1] - 1]] for k in range(folds)]


def parse_candidate(spec: str, models: list[str]) -> tuple[str, list[str], str]:
    """``NAME[@MODEL,MODEL]=ARGS`` -> (name, models, args)."""
    head, sep, train_args = spec.partition("=")
    name, _, only = head.partition("@")
    if not sep or not name or "-" in name:
        raise InputError(f"--candidate {spec!r}: expected NAME[@MODEL,...]=TRAIN_ARGS, NAME without '-'")
    chosen = [m.strip() for m in only.split(",") if m.strip()] if only else models
    unknown = [m for m in chosen if m not in MODEL_NAMES]
    if unknown:
        raise InputError(f"--candidate {spec!r}: unknown model {', '.join(unknown)}")
    return name, chosen, train_args


def history_epochs(run_dir: Path) -> int:
    return len(RunFiles(run_dir).read_history(missing_ok=True))


def seed_tag(seed: int) -> str:
    """The run-name suffix of a seed: none for seed 0 (the study's first seed), ``-sN`` otherwise."""
    return f"-s{seed}" if seed else ""


class Run:
    """One training run of a study: its directory, its ``scripts/train.py`` command and its state.

    ``split_dir`` holds the ``train/`` and ``val/`` folders; ``label`` (default
    ``NAME-MODEL-fFOLD`` plus the seed tag) names the run directory under ``runs_dir``.
    """

    def __init__(self, name, model, fold, args, runs_dir, split_dir, common, seed=0, label=None):
        self.label = label or f"{name}-{model}-f{fold}{seed_tag(seed)}"
        self.name, self.model, self.fold, self.seed = name, model, fold, seed
        self.dir = runs_dir / self.label
        filled = args.replace("{runs}", str(runs_dir)).replace("{fold}", str(fold))
        filled = filled.replace("{seed_tag}", seed_tag(seed))
        self.needs = [
            runs_dir / Path(a).relative_to(runs_dir).parts[0]
            for a in shlex.split(filled)
            if a.startswith(str(runs_dir))
        ]
        self.command = [
            sys.executable,
            str(REPO / "scripts" / "train.py"),
            "--model",
            model,
            "--train-dir",
            str(split_dir / "train"),
            "--val-dir",
            str(split_dir / "val"),
            "--out",
            str(self.dir),
            *common,
            f"--seed={seed}",
            *shlex.split(filled),
        ]
        # The run's --epochs: the last one given (a candidate may override the common one).
        epochs = argparse.ArgumentParser(add_help=False)
        epochs.add_argument("--epochs", type=int)
        self.epochs = epochs.parse_known_args(self.command[2:])[0].epochs

    def done(self) -> bool:
        """All epochs recorded and the trainer gone (it writes the last checkpoint after the history row)."""
        return (
            history_epochs(self.dir) >= self.epochs
            and RunFiles(self.dir).last.is_file()
            and not self.active_elsewhere()
        )

    def active_elsewhere(self) -> bool:
        """Another process trains it: the run directory's lock (see fcn.training.rundir) is held."""
        try:
            import fcntl
        except ImportError:  # not POSIX
            return False
        try:
            with open(RunFiles(self.dir).lock_path) as handle:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
        except BlockingIOError:
            return True
        except OSError:
            pass
        return False


def train_all(runs: list[Run], jobs: int, threads: int) -> None:
    """Train the runs not done yet, ``jobs`` at a time, each after the runs it needs."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    if threads:
        env.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1")
    pending = [r for r in runs if not r.done()]
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    by_dir = {r.dir: r for r in runs}
    while pending or running:
        for label, (process, start) in list(running.items()):
            if process.poll() is not None:
                del running[label]
                print(f"cv: {label} exit {process.returncode} after {(time.time() - start) / 60:.1f} min", flush=True)
        pending = [r for r in pending if r.label in running or not r.done()]
        elsewhere = {r.label for r in pending if r.label not in running and r.active_elsewhere()}
        for run in list(pending):
            if len(running) + len(elsewhere) >= jobs:
                break
            if run.label in elsewhere:
                continue
            blockers = [n for n in run.needs if n in by_dir and not by_dir[n].done()]
            if any(by_dir[n] in pending or by_dir[n].label in running for n in blockers):
                continue
            pending.remove(run)
            if blockers:
                print(f"cv: skip {run.label}: {', '.join(b.name for b in blockers)} did not finish", flush=True)
                continue
            command = run.command
            files = RunFiles(run.dir)
            if files.last.is_file() and files.config_path.is_file():
                command = command[:2] + ["--resume", str(run.dir), "--epochs", str(run.epochs), "--progress", "none"]
            print("$ " + shlex.join(command), flush=True)
            log = open(run.dir.parent / f"{run.label}.log", "a")  # noqa: SIM115  (closed with the process)
            running[run.label] = (
                subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT),
                time.time(),
            )
        time.sleep(5)


def last3_iou(run_dir: Path) -> list[float]:
    rows = RunFiles(run_dir).read_history()[-3:]
    return [statistics.mean(float(r[c]) for r in rows) for c in IOU_COLUMNS]


def summarise_study(runs: list[Run], after: int) -> dict[str, list[dict]]:
    """{group_key: [one summary per run]} over the runs that recorded an epoch (``finished`` marks the done ones);
    each summary names its ``candidate`` and ``model``."""
    table: dict[str, list[dict]] = {}
    for run in runs:
        if history_epochs(run.dir):
            figures = summarise(run.dir, after)
            figures.update(candidate=run.name, model=run.model, fold=run.fold, seed=run.seed, target_epochs=run.epochs)
            figures.update(finished=run.done(), dir=str(run.dir), last3_iou=last3_iou(run.dir))
            # A run initialised from another (a second stage) is drawn after that run's epochs.
            figures["first_epoch"] = 1 + sum(history_epochs(n) for n in run.needs)
            table.setdefault(group_key(run.name, run.model), []).append(figures)
    return table


def finished_only(table: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The table without unfinished runs (and without groups that have none)."""
    kept = {key: [r for r in runs if r["finished"]] for key, runs in table.items()}
    return {key: runs for key, runs in kept.items() if runs}


def markdown(table: dict[str, list[dict]], after: int) -> str:
    """The summary over finished runs (mean ± sd over folds x seeds), then one row per run."""
    classes = [CLASS_NAMES[c] for c in SCORED_CLASSES]
    lines = [
        "| candidate | model | runs (folds × seeds) | last-3 mIoU mean ± sd | best | "
        + " | ".join(classes)
        + f" | largest drop after epoch {after} | min/run |",
        "|---|---|---:|---:|---:|" + "---:|" * len(classes) + "---:|---:|",
    ]
    for key, runs in finished_only(table).items():
        last3 = [r["last3"] for r in runs]
        sd = f"{statistics.stdev(last3):.3f}" if len(runs) > 1 else "–"
        ious = [statistics.mean(r["last3_iou"][c] for r in runs) for c in range(len(classes))]
        shape = f"{len({r['fold'] for r in runs})} × {len({r['seed'] for r in runs})}"
        lines.append(
            f"| {key.replace(' ', ' | ')} | {len(runs)} ({shape}) | {statistics.mean(last3):.3f} ± {sd} | "
            f"{statistics.mean(r['best'] for r in runs):.3f} | "
            + " | ".join(f"{v:.3f}" for v in ious)
            + f" | {max(r['worst_drop'] for r in runs):.3f} | {statistics.mean(r['minutes'] for r in runs):.1f} |"
        )
    lines += ["", "| candidate | model | fold | seed | epochs | last-3 mIoU | best | largest late drop | minutes |"]
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, runs in table.items():
        for r in runs:
            epochs = f"{r['epochs']}" if r["finished"] else f"{r['epochs']} of {r['target_epochs']} (unfinished)"
            lines.append(
                f"| {key.replace(' ', ' | ')} | {r['fold']} | {r['seed']} | {epochs} | {r['last3']:.3f} | "
                f"{r['best']:.3f} | {r['worst_drop']:.3f} | {r['minutes']:.1f} |"
            )
    return "\n".join(lines)


def study_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """A study script's parser: the first paragraph of its docstring says what it does, the rest is the epilog."""
    return argparse.ArgumentParser(
        prog=prog,
        description=doc.split("\n\n")[0],
        epilog="\n\n".join(doc.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_study_options(parser: argparse.ArgumentParser) -> None:
    """The options every study shares: the training crop, how runs are run, and the summary."""
    parser.add_argument("--crop", type=int, default=128, help="training crop (0: none; default 128)")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once (default 1)")
    parser.add_argument("--threads", type=int, default=0, help="TF intra-op threads per run (0: TF's default)")
    parser.add_argument("--after", type=int, default=6, help="late drops count after this epoch (default 6)")
    parser.add_argument("--table-only", action="store_true", help="summarise the runs there, train nothing")


def get_args_parser() -> argparse.ArgumentParser:
    parser = study_parser("bench/cv.py", __doc__)
    parser.add_argument("--data", type=Path, required=True, help="one folder of <id>_sat.jpg + <id>_mask.png tiles")
    parser.add_argument("--out", type=Path, required=True, help="study folder: split{f}/, runs/, cv.md, cv.json")
    parser.add_argument("--folds", type=int, default=3, help="number of folds (default 3)")
    parser.add_argument(
        "--models", default="fcn32s,fcn8s", help="models of candidates without @ (default fcn32s,fcn8s)"
    )
    parser.add_argument(
        "--candidate", action="append", metavar="NAME[@MODELS]=ARGS", help="a recipe to cross-validate (repeatable)"
    )
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--seeds", "--seed", default="0", metavar="N,N", help="seeds of every run (default 0)")
    parser.add_argument(
        "--order",
        choices=("candidate", "fold"),
        default="candidate",
        help="run order: each candidate over all folds, or each fold through all candidates (default candidate)",
    )
    parser.add_argument(
        "--train-folds", metavar="N,N", help="train only the runs of these folds (default all); the table shows all"
    )
    add_study_options(parser)
    parser.add_argument("--plot", type=Path, metavar="PNG", help="curves: mean over folds, range shaded")
    return parser


def split_at_double_dash(argv: list[str]) -> tuple[list[str], list[str]]:
    """(this script's arguments, the arguments after ``--`` that go to every run's trainer)."""
    if "--" not in argv:
        return argv, []
    return argv[: argv.index("--")], argv[argv.index("--") + 1 :]


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: sorted distinct non-negative integers."""
    try:
        seeds = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise InputError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if not seeds or min(seeds) < 0:
        raise InputError(f"--seeds {text!r}: expected non-negative integers, e.g. 0,1,2")
    return seeds


def common_train_args(args, extra: list[str]) -> list[str]:
    """The trainer arguments every run shares (a candidate's own come after them)."""
    common = [f"--epochs={args.epochs}", f"--batch-size={args.batch_size}", f"--precision={args.precision}"]
    common += ["--progress=none"]
    common += [f"--image-size={args.image_size}"] if args.image_size else []
    return common + ([f"--crop={args.crop}"] if args.crop else []) + extra


def link_splits(args, blocks: list[list[str]]) -> None:
    """Link each fold's split under ``STUDY_DIR/split{f}`` (unless ``--table-only``) and name its validation ids."""
    for fold, block in enumerate(blocks, start=1):
        split_dir, spec = args.out / f"split{fold}", f"{block[0]}-{block[-1]}"
        marker = split_dir / SPLIT_MARKER
        if not args.table_only and not (marker.is_file() and f"val ids: {spec}\n" in marker.read_text()):
            make_split(args.data, spec, split_dir)  # an existing identical split is kept (runs may read it)
        print(f"fold {fold}: validates on {spec} ({len(block)} tiles)", flush=True)


def plan_runs(args, candidates: list, folds: int, common: list[str], seeds: list[int]) -> list[Run]:
    """Every candidate x model x fold x seed, in priority order: the candidates as given, each with its
    models, over the folds (or, with ``--order fold``, fold by fold); all of it once per seed."""
    jobs = [(name, model, train_args) for name, models_of, train_args in candidates for model in models_of]
    fold_numbers = range(1, folds + 1)
    if args.order == "fold":
        order = [(j, f) for f in fold_numbers for j in jobs]
    else:
        order = [(j, f) for j in jobs for f in fold_numbers]
    runs_dir = args.out / "runs"
    return [Run(n, m, f, a, runs_dir, args.out / f"split{f}", common, seed) for seed in seeds for (n, m, a), f in order]


def write_summary(args, runs: list[Run], blocks: list[list[str]], seeds: list[int]) -> None:
    """Print the study's table and write ``cv.md``, ``cv.json`` and the ``--plot``."""
    table = summarise_study(runs, args.after)
    if not table:
        raise InputError(f"{args.out / 'runs'}: no run has recorded an epoch yet")
    text = markdown(table, args.after)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "cv.md", text + "\n")
    document = {"folds": [[b[0], b[-1]] for b in blocks], "seeds": seeds, "table": table}
    write_text_atomic(args.out / "cv.json", json.dumps(document, indent=2) + "\n")
    finished = finished_only(table)
    if args.plot and finished:
        title = "validation mIoU per epoch: mean over finished runs (count), range shaded"
        plot_curves(finished, args.plot, title=title)


def parse_study_args(
    parser: argparse.ArgumentParser, argv=None
) -> tuple[argparse.Namespace, list[str], list, list[int]]:
    """(arguments, the trainer's arguments after ``--``, the candidates, the seeds) of a study's command line."""
    argv, extra = split_at_double_dash(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    candidates = [parse_candidate(c, models) for c in (args.candidate or ["default="])]
    return args, extra, candidates, parse_seeds(args.seeds)


def main(argv=None) -> int:
    args, extra, candidates, seeds = parse_study_args(get_args_parser(), argv)

    from fcn.data.pairs import find_pairs

    blocks = fold_blocks([p.id for p in find_pairs(args.data)], args.folds)
    link_splits(args, blocks)
    runs = plan_runs(args, candidates, len(blocks), common_train_args(args, extra), seeds)
    if not args.table_only:
        (args.out / "runs").mkdir(parents=True, exist_ok=True)
        chosen = {int(f) for f in args.train_folds.split(",")} if args.train_folds else set(range(1, len(blocks) + 1))
        train_all([r for r in runs if r.fold in chosen], args.jobs, args.threads)
    write_summary(args, runs, blocks, seeds)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
