"""What only an operator's machine runs: ``explain`` and the what-if port (``reconcile --dry-run``).

It reads the real table and IVS and holds every change back in an in-memory moto table, so it needs moto
(``pip install stagepilot[operator]``). It is not in the functions' zip (infra/bundling.py leaves it out),
and nothing in the zip imports it (tests/unit/test_layers.py).
"""
