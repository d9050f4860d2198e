"""``python -m prmh`` is the ``prmh`` command."""

from prmh.cli import main

main()
