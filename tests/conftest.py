import os

from hypothesis import HealthCheck, settings

# CI machines are small and noisy: no per-example deadline, a bounded number of examples.
settings.register_profile("ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
