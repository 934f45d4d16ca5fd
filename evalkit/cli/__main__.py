"""``python -m evalkit.cli``: the same as the ``evalkit`` command."""

from evalkit.cli import main

main()
