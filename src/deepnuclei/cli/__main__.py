"""`python -m deepnuclei.cli`, as the `deepnuclei` command."""

import sys

from . import main

sys.exit(main())
