"""``python -m rosenblatt`` runs the command line (see :mod:`rosenblatt.cli`)."""

import sys

from rosenblatt.cli import main

sys.exit(main())
