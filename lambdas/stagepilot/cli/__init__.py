"""The ``stagepilot`` command line."""
