"""``python -m im2col_conv.equivalence``: see :func:`im2col_conv.equivalence.main`."""

import sys

from .cli import main

sys.exit(main())
