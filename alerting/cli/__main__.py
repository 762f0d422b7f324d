"""``python -m alerting.cli``: the ``alerting`` command (the demo starts its children so)."""

from __future__ import annotations

import sys

from alerting.cli import main

sys.exit(main())
