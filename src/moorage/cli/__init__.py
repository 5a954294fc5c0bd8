"""The ``moorage`` command line: thin commands over ``moorage.app``."""
