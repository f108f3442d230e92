"""``python -m api.cli``: the same as the ``consent-ledger`` command."""

import sys

from api.cli.program import main

sys.exit(main())
