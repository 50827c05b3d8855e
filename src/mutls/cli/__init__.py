"""The ``mutls`` command-line interface."""
