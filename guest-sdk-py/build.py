#!/usr/bin/env python3
"""Builds a fieldhook plugin written in Python into a WebAssembly component
for the ``fieldhook:plugin/plugin@0.2.0`` world, with componentize-py.

    python3 guest-sdk-py/build.py plugins/my-plugin -o plugins/my-plugin/plugin.wasm

The plugin directory holds ``app.py`` (or ``--module NAME``) with a class
``Handler(fieldhook.Plugin)``; this SDK directory is put on the module path.
Needs ``componentize-py`` (``pip install componentize-py==0.25.0``) on PATH.
"""

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

SDK_DIR = Path(__file__).resolve().parent
# The contract this SDK speaks.
CONTRACT = "0.2.0"


def world(wit: Path) -> str:
    """The world of the contract in ``wit``, which must be the one this SDK speaks."""
    try:
        text = (wit / "plugin.wit").read_text()
    except OSError:
        raise SystemExit(f"error: {wit} has no plugin.wit")
    found = re.search(r"^package\s+fieldhook:plugin@([0-9.]+)\s*;", text, re.M)
    version = found.group(1) if found else "(unknown)"
    if version != CONTRACT:
        raise SystemExit(
            f"error: {wit} is contract {version}; this SDK builds {CONTRACT} only "
            "(components already built for 0.1 keep working in the daemon)"
        )
    return f"fieldhook:plugin/plugin@{CONTRACT}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("plugin_dir", type=Path, help="directory holding the plugin's module")
    p.add_argument("-o", "--out", type=Path, required=True, help="component to write")
    p.add_argument("--module", default="app", help="module holding class Handler (default: app)")
    p.add_argument("--wit", type=Path, default=SDK_DIR.parent / "wit" / "0.2", help="WIT directory")
    p.add_argument("--componentize-py", default="componentize-py", help="the tool to run")
    args = p.parse_args()
    target = world(args.wit)

    tool = shutil.which(args.componentize_py)
    if tool is None:
        print(
            f"error: `{args.componentize_py}` not found: pip install componentize-py==0.25.0",
            file=sys.stderr,
        )
        return 2
    if not (args.plugin_dir / f"{args.module}.py").is_file():
        print(f"error: {args.plugin_dir / (args.module + '.py')} does not exist", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        tool,
        "-d", str(args.wit),
        "-w", target,
        "componentize",
        "-p", str(args.plugin_dir),
        "-p", str(SDK_DIR),
        args.module,
        "-o", str(args.out),
    ]
    started = time.monotonic()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        print(f"error: componentize-py failed ({done.returncode}): {' '.join(cmd)}", file=sys.stderr)
        return done.returncode
    size = args.out.stat().st_size / 1e6
    print(f"built {args.out} ({size:.1f} MB) in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
