"""``robustness presets [NAME]``: list the named studies, or print one as a spec (JSON).

A printed preset is a valid spec file: ``robustness presets figure6 > my.json``, edit it, then
``robustness run my.json``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from studies.presets import DEFAULT_PRESET, DESCRIPTIONS, PRESETS, get_preset


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "presets",
        help="list the preset studies, or print one as JSON",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="print this preset's spec")
    parser.add_argument("--json", action="store_true", help="list every preset's spec as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.name:
        print(get_preset(args.name).to_json())
        return 0
    if args.json:
        print(json.dumps({name: spec.to_dict() for name, spec in PRESETS.items()}, indent=2))
        return 0
    width = max(len(name) for name in PRESETS)
    for name, spec in PRESETS.items():
        default = "  (default)" if name == DEFAULT_PRESET else ""
        print(
            f"{name:<{width}}  {spec.num_trials:>4} trials  {DESCRIPTIONS.get(name, '')}{default}"
        )
    return 0
