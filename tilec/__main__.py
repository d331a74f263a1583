"""``python -m tilec ...`` is the ``tilec`` command (so ``torchrun -m tilec model generate ...`` works)."""
import sys

from tilec.cli import main

sys.exit(main())
