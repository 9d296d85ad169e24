"""``python -m elastoformer_hf.cli``: the ``elastoformer`` command (``accelerate launch -m elastoformer_hf.cli train``)."""

import sys

from . import main

sys.exit(main())
