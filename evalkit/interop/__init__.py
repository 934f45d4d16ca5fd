"""Logs of other evaluation tools in and out of the store (inspect-ai)."""
