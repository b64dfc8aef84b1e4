"""Built-in http_bureau connectors (being written)."""
