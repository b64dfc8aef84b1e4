"""Built-in negativation connectors (being written)."""
