"""``python -m convzoo ...`` (and ``torchrun -m convzoo train ...``) runs the command line."""

import sys

from convzoo.cli import main

sys.exit(main())
