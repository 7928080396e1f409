"""``python -m disgen`` (also what ``torchrun -m disgen`` runs)."""

import sys

from disgen.cli import main

sys.exit(main())
