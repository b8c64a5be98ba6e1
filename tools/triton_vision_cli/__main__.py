"""``python -m triton_vision_cli``: the ``triton-vision`` command, run by a given Python."""

import sys

from triton_vision_cli.main import main

sys.exit(main())
