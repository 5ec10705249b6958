"""``python -m dr_core`` runs the operator CLI (also installed as ``apim-dr``)."""

import sys

from .cli import main

sys.exit(main())
