"""``python -m animesion_lib.cli ...`` (and ``torchrun -m animesion_lib.cli ...``) run the ``animesion`` command."""

import sys

from animesion_lib.cli import main

sys.exit(main())
