"""``python -m memsift``: the same as the ``memsift`` command."""

from memsift.cli import main

main()
