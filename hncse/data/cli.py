"""`hncse-data`: fetch the data of SimCSE-style training and evaluation, or say where it comes from.

    hncse-data download                 # wiki1m, nli and senteval into the Hugging Face cache
    hncse-data download senteval        # one of them
    hncse-data where                    # local copy ($HNCSE_DATA_DIR), cache, or not on this machine

See `hncse.data.sources` for the order in which names resolve.
"""

from __future__ import annotations

import argparse
import logging

from hncse.data.sources import HUB_DATASET, SOURCES, describe, fetch
from hncse.errors import run_cli


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hncse-data", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    download = commands.add_parser("download", help=f"fetch files of {HUB_DATASET} into the Hugging Face cache")
    download.add_argument("names", nargs="*", default=["all"], choices=[*SOURCES, "all"], metavar="NAME",
                          help=f"{', '.join(SOURCES)} or all (default: all)")  # fmt: skip
    commands.add_parser("where", help="say where each file would come from, without downloading")
    return parser


def main(argv: list[str] | None = None) -> dict[str, str]:
    args = make_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if args.command == "where":
        lines = {name: describe(name) for name in SOURCES}
    else:
        names = list(SOURCES) if "all" in args.names else list(dict.fromkeys(args.names))
        lines = {name: f"{name}: {fetch(name)}" for name in names}
    print("\n".join(lines.values()))
    return lines


def cli() -> None:
    run_cli(main, "hncse-data")


if __name__ == "__main__":
    cli()
