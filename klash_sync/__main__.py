"""``python -m klash_sync`` is the same as the ``klash-sync`` command."""

from __future__ import annotations

import sys

from klash_sync.cli.main import main

sys.exit(main())
