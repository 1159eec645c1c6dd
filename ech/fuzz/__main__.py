"""``python -m ech.fuzz HOST:PORT ...``: ``ech fuzz`` without the ``ech`` command."""

from __future__ import annotations

import sys

from ech.fuzz.cli import main

sys.exit(main())
