"""``python -m poolkit``: the same as the ``poolkit`` command."""

import sys

from ._cli import main

sys.exit(main())
