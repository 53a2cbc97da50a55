"""Entry points: the `keras-tbptt` command line and the demo."""
