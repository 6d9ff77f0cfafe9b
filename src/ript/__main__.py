"""`python -m ript` is the `ript` command."""

import sys

from ript.cli.main import main

sys.exit(main())
