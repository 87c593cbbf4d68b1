"""``python -m paddock --version``."""
import argparse
import sys
from typing import List, Optional

from ._version import __version__


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m paddock``: prints the SDK's version."""
    p = argparse.ArgumentParser(prog="python -m paddock", description="Paddock Python SDK")
    p.add_argument("--version", action="store_true", help="print the SDK's version")
    args = p.parse_args(argv)
    if args.version:
        print(__version__)
        return 0
    p.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
