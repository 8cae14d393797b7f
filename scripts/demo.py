"""``make demo`` without make: the same as ``codesign demo`` (host_search/demo.py).

    python scripts/demo.py [--quick] [--out DIR]
"""
from __future__ import annotations

import sys

from pynq_codesign.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
