"""Decisions: pure functions over plain data. No AWS, no I/O."""
