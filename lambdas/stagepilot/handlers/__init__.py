"""Lambda entry points: one module per function, each exporting ``lambda_handler``. Wiring only."""
