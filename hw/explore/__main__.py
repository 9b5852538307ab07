"""``python -m hw.explore``: see :mod:`hw.explore.cli`."""

import sys

from .cli import main

sys.exit(main())
