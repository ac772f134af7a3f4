"""``python -m petriflow`` is the ``petriflow`` command."""

from petriflow.cli import main

main()
