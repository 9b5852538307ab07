"""``python -m hw`` is ``python -m hw.generate``."""

import sys

from hw.generate import main

sys.exit(main())
