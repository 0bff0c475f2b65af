"""The ``isobench`` command line."""
