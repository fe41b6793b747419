"""``interlock verifiers``: list every verifier known by name."""

from __future__ import annotations

import argparse
import json

from interlock.monitor.registry import list_verifiers

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object per verifier")


def main(args: argparse.Namespace) -> int:
    found = list_verifiers()
    if args.json:
        for info in found:
            print(json.dumps({"name": info.name, "target": info.target, "origin": info.origin,
                              "description": info.description}))
        return 0
    if not found:
        print("no verifiers registered")
        return 0
    width = max(len(i.name) for i in found)
    for info in found:
        print(f"{info.name:<{width}}  {info.origin:<12}  {info.description}")
    return 0
