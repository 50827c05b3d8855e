"""``python -m mutls``: the same as the ``mutls`` command."""

from __future__ import annotations

from mutls.cli.app import main

main()
