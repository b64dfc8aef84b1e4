"""The collection cadence (régua de cobrança). So far: the legal guards (guards.py)."""
