"""``robustness data status | fetch NAME | import NAME ARCHIVE``: the datasets.

  robustness data status                     # each dataset: where it was found, or how to get it
  robustness data fetch fashion_mnist        # torchvision's download, else Debian's package (root)
  robustness data fetch cifar10              # torchvision's download (170 MB)
  robustness data import cifar10 ../shared/data/cifar10-jpeg75/cifar10-jpeg75.tar.gz

Looked for, in this order: the data directory (``--data-dir``, ``$ROBUSTNESS_DATA_DIR``, default
``<home>/data``), Debian's ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``);
``fetch`` then downloads with torchvision (``$ROBUSTNESS_DOWNLOAD=0`` turns that off) and, for
Fashion-MNIST as root with ``apt-get``, installs the Debian package. Exit status: 0 when every
dataset asked about is there, 1 when one is missing, 2 for invalid input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from studies.errors import DatasetNotFoundError
from studies.workloads import archives, registry, sources
from studies.workloads.sources import DATASETS


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "data",
        help="the datasets: where they are, fetch one, import an archive",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir", help="datasets folder (default $ROBUSTNESS_DATA_DIR or <home>/data)"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = actions.add_parser("status", help="where each dataset was found, or how to get it")
    status.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"any of {', '.join(DATASETS)} or a plugin's workload (default: all)",
    )
    status.set_defaults(func=run_status)
    fetch = actions.add_parser("fetch", help="make a dataset available (download, Debian package)")
    fetch.add_argument("name", help=f"{', '.join(DATASETS)} or a plugin's workload")
    fetch.add_argument(
        "--no-download", action="store_true", help="do not use torchvision's download"
    )
    fetch.add_argument("--no-install", action="store_true", help="do not install Debian's package")
    fetch.set_defaults(func=run_fetch)
    imp = actions.add_parser("import", help="unpack a tar or zip of a dataset into the data folder")
    imp.add_argument("name", choices=[d for d in DATASETS if d != "digits"])
    imp.add_argument("archive", help="a tar (.tar, .tar.gz, ...) or zip file")
    imp.add_argument("--replace", action="store_true", help="replace a dataset already there")
    imp.set_defaults(func=run_import)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_status(args: argparse.Namespace) -> int:
    missing = 0
    # an unknown name is a SpecError (exit 2); the plugins' workloads are listed after ours
    for name in args.names or registry.workload_names():
        if name in DATASETS:
            where = sources.locate(name, data_dir=args.data_dir)
            missing += not where.found
            print(where.describe())
            continue
        status = registry.data_status(name, data_dir=args.data_dir)
        missing += not status.found
        print(f"{name}: {status.where}" if status.found else status.hint or f"{name}: missing")
    return 1 if missing else 0


def run_fetch(args: argparse.Namespace) -> int:
    if args.name not in DATASETS:  # a plugin's workload: its own source fetches
        status = registry.fetch_data(args.name, data_dir=args.data_dir)
        print(f"{args.name}: {status.where}" if status.found else status.hint)
        return 0 if status.found else 1
    try:
        where = sources.fetch(
            args.name,
            data_dir=args.data_dir,
            download=False if args.no_download else None,
            install_package=False if args.no_install else None,
            say=_say,
        )
    except DatasetNotFoundError as exc:
        print(f"robustness: {exc}", file=sys.stderr)
        return 1
    print(where.describe())
    return 0


def run_import(args: argparse.Namespace) -> int:
    where = archives.import_archive(
        args.name, args.archive, data_dir=args.data_dir, replace=args.replace, say=_say
    )
    print(where.describe())
    return 0
