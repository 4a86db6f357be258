"""stagepilot: automation for Amazon IVS real-time stages."""

__version__ = "0.1.0"
