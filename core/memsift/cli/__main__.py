"""``python -m memsift.cli``: the same as the ``memsift`` command."""

from memsift.cli import main

main()
