"""Runnable analysis examples (``python -m examples.NAME`` from the repository root)."""
