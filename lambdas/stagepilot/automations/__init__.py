"""Automations: carry out a decision for one event through the adapters (IVS, table)."""
