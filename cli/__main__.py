"""`python -m regua.cli` runs the command line, like the `regua` script."""

from . import main

main()
