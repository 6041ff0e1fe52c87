"""``python -m hypoprobe``: the same as the ``hypoprobe`` command."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
