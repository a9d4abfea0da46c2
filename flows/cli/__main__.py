"""``python -m flows.cli``: the same as the ``funnel`` script."""

from flows.cli import main

main()
