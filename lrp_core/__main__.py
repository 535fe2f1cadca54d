"""``python -m lrp_core`` runs the ``lrp`` command line."""

import sys

from .cli import main

sys.exit(main())
