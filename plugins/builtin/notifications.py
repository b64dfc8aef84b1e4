"""Built-in notifications connectors (being written)."""
