"""``python -m ttsvar.world <command>``: the world's training commands. Each command lives in its
own module, which adds its sub-parser with ``add_cli(subparsers)`` and sets ``run``."""

from __future__ import annotations

import argparse
import sys

from ..errors import TTSVarError
from . import train_verifiers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ttsvar.world", description="Train models of the synthetic world.")
    commands = parser.add_subparsers(dest="command", required=True)
    train_verifiers.add_cli(commands)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except TTSVarError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
