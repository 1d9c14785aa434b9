"""hypothesis settings of the input properties.

Profiles: ``geosr-inputs`` (the default: 25 examples per property, no deadline, as one
``geosr sr`` run takes ~0.1 s but the first ones import torch) and ``geosr-inputs-thorough``
(400 per property); pick one with ``GEOSR_HYPOTHESIS_PROFILE=geosr-inputs-thorough``. The
``slow`` tests draw 400 examples whatever the profile.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("geosr-inputs", max_examples=25, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("geosr-inputs-thorough", parent=settings.get_profile("geosr-inputs"),
                          max_examples=400)
settings.load_profile(os.environ.get("GEOSR_HYPOTHESIS_PROFILE", "geosr-inputs"))
