"""``python -m rapport`` is the ``rapport`` command."""

from rapport.cli import main

main()
