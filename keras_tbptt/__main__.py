"""`python -m keras_tbptt`: the `keras-tbptt` command line."""

import sys

from keras_tbptt.apps.cli import main

sys.exit(main())
