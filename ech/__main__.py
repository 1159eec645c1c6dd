"""``python -m ech``."""

from __future__ import annotations

import sys

from ech.cli import main

sys.exit(main())
