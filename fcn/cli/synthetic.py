"""``python -m fcn.cli.synthetic OUT``: write the demo's synthetic tiles."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fcn.cli.common import ArgumentParser, add_message_options, parse_command_line, positive_int, run_cli
from fcn.data.synthetic import make_synthetic_dataset

log = logging.getLogger("fcn.cli.synthetic")  # not __name__: "__main__" under python -m


def get_args_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Write a synthetic land-cover dataset (train/ and val/).")
    parser.add_argument("out_dir", help="output folder (train/ and val/ are created inside)")
    parser.add_argument("--n-train", type=positive_int, default=48, help="training tiles (default 48)")
    parser.add_argument("--n-val", type=positive_int, default=12, help="validation tiles (default 12)")
    parser.add_argument("--size", type=positive_int, default=128, help="tile side in pixels (default 128)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_message_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command_line(get_args_parser(), argv)
    train_dir, val_dir = make_synthetic_dataset(
        args.out_dir, n_train=args.n_train, n_val=args.n_val, size=args.size, seed=args.seed
    )
    log.info("wrote %d tiles to %s and %d to %s", args.n_train, train_dir, args.n_val, val_dir)
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
