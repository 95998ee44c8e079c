"""`python -m sqgan_core` is the `sqgan` command, for machines where the package is on PYTHONPATH but
not installed (no console script)."""
import sys

from sqgan_core.cli import main

if __name__ == "__main__":  # DataLoader's spawned workers import this module as __mp_main__
    sys.exit(main())
