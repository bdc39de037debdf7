"""Issue 20's and issue 28's ("r2: ...") cases, run against one source tree: exit code, stderr lines and what is on disk afterwards.

    python bench/nothing_lost_table.py --tree TREE --scratch SCRATCH_DIR --model MODEL.keras [--json OUT.json]
    python bench/nothing_lost_table.py --make-model MODEL.keras        # a tiny FCN8s checkpoint
    python bench/nothing_lost_table.py --table BEFORE.json AFTER.json  # the before -> after markdown table

``TREE`` is a checkout of the project (its ``scripts/*.py`` run with its own ``fcn``). Full-disk cases
mount a small tmpfs (root only; skipped otherwise); the unreadable-folder case runs the command as
the user ``nobody``. Cases that would exhaust the machine's memory under the old code (``--scale 100``,
``--size 200000``) run under ``ulimit -v``. Each case gets a fresh folder under ``SCRATCH_DIR``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ siblings

import nothing_lost_round2  # noqa: E402, F401  (registers issue 28's cases, "r2: ...", after issue 20's)
from nothing_lost_cases import CASES  # noqa: E402
from nothing_lost_harness import Runner  # noqa: E402


def make_model(path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from fcn.model.checkpoints import ModelInfo, save_checkpoint
    from helpers import tiny_fcn

    save_checkpoint(tiny_fcn("fcn8s"), path, {}, ModelInfo(model="fcn8s", train_scale=1.0, tile_gsd=1.2))


def run_all(args) -> list[dict]:
    runner = Runner(Path(args.tree).resolve(), Path(args.model).resolve(), sys.executable)
    rows = []
    for name, function in CASES.items():
        if args.only and not any(word in name for word in args.only):
            continue
        folder = Path(args.scratch) / re.sub(r"\W+", "_", name)[:60]
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            out, state = function(runner, folder)
        except Exception as err:  # the harness, not the command
            out, state = None, f"harness error: {err.__class__.__name__}: {err}"
        row = {"case": name, "state": state}
        if out is not None:
            rc, lines, seconds, _ = out
            row.update(rc=rc, lines=len(lines), first=lines[0][:160] if lines else "", all=lines[:5])
        rows.append(row)
        print(json.dumps(row)[:400], flush=True)
    return rows


def cell(r: dict) -> str:
    """One side of a row: exit code, stderr line count, the first line, what is on disk."""
    return f"{r.get('rc', '-')}, {r.get('lines', '-')} line(s): `{r.get('first', '')[:110]}`; {r.get('state', '')}"


def table(before: list[dict], after: list[dict]) -> str:
    after_by = {row["case"]: row for row in after}
    out = ["| case | before: exit, stderr lines, on disk | after: exit, stderr lines, on disk |", "|---|---|---|"]
    for row in before:
        other = after_by.get(row["case"], {})
        out.append(f"| {row['case']} | {cell(row)} | {cell(other)} |")
    return "\n".join(out)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree")
    parser.add_argument("--scratch")
    parser.add_argument("--model")
    parser.add_argument("--json")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--make-model")
    parser.add_argument("--table", nargs=2)
    return parser


def main() -> None:
    args = get_args_parser().parse_args()
    if args.make_model:
        make_model(Path(args.make_model))
    elif args.table:
        print(table(*(json.loads(Path(p).read_text()) for p in args.table)))
    else:
        rows = run_all(args)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
