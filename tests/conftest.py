import os

from hypothesis import HealthCheck, settings

# Deterministic by default: the same examples every run (CI and laptops alike).
settings.register_profile(
    "default", derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
