"""``python -m dr_core`` runs the operator CLI (also installed as ``apim-dr``)."""

import sys

from dr_core.cli import main

sys.exit(main())
