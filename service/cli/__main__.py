"""``python -m service.cli``: the ``robustness`` console script."""

from service.cli import main

raise SystemExit(main())
