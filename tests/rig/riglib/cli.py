"""Command-line entry of tests/rig/rig."""
import argparse
import sys

from . import assets


def cmd_assets(args):
    assets.ensure()
    return 0


def cmd_path(args):
    index = assets.load()
    kind, _, name = args.key.partition(":")
    table = {
        "rig-kernel": lambda: index["rig"]["kernel"],
        "rig-flavour": lambda: index["rig"]["flavour"],
        "guest-kernel": lambda: index["guests"][name]["kernel"],
        "guest-modules": lambda: index["guests"][name]["modules"],
    }
    # A Python package's directory for PYTHONPATH: "rig path qemu-qmp".
    if args.key in index.get("python", {}):
        print(index["python"][args.key]["path"])
        return 0
    if kind not in table:
        print(f"rig path: unknown key {args.key!r}", file=sys.stderr)
        return 2
    try:
        print(table[kind]())
    except KeyError:
        print(f"rig path: no guest kernel named {name!r}", file=sys.stderr)
        return 2
    return 0


def main(argv):
    p = argparse.ArgumentParser(prog="rig")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("assets").set_defaults(func=cmd_assets)
    sp = sub.add_parser("path")
    sp.add_argument("key")
    sp.set_defaults(func=cmd_path)
    from . import initramfs, runner
    runner.add_parser(sub)
    initramfs.add_parser(sub)
    args = p.parse_args(argv)
    return args.func(args)
