"""``python -m interlock``: the same command line as the ``interlock`` script."""

from __future__ import annotations

import sys

from interlock.monitor.cli import main

if __name__ == "__main__":
    sys.exit(main())
