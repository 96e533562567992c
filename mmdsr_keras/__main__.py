"""`python -m mmdsr_keras` is `mmdsr-keras`."""

import sys

from mmdsr_keras.cli import main

sys.exit(main())
