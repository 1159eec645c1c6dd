"""``python -m ech.cli``, as ``python -m ech``."""

from __future__ import annotations

import sys

from ech.cli.main import main

sys.exit(main())
