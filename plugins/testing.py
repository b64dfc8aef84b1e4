"""Pytest fixtures and the contract test kit for plugin authors (being written)."""
