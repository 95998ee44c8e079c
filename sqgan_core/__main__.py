"""`python -m sqgan_core` is the `sqgan` command, for machines where the package is on PYTHONPATH but
not installed (no console script)."""
import sys

from sqgan_core.cli import main

sys.exit(main())
