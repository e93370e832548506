"""``python -m rosenblatt``: the command line (``rosenblatt train``, ``info``, ...)."""

import sys

from rosenblatt.cli import main

sys.exit(main())
