"""``python -m publisher.cli``."""

from . import main

main()
