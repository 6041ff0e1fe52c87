"""``python -m hypoprobe.demo``: run the demo (see :mod:`hypoprobe.demo`)."""

from . import main

raise SystemExit(main())
