"""``python -m flinklet ...`` is the ``flinklet`` command."""

import sys

from flinklet.cli import main

sys.exit(main())
