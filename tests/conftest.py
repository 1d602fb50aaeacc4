"""Suite-wide settings.

The test problems are small: torch's intra-op thread pool costs more than it saves on them,
and on a shared 2-core machine oversubscription made tiny matmuls up to 100x slower. One
thread per test process keeps the suite fast and its timings stable.
"""

from __future__ import annotations

import torch

torch.set_num_threads(1)

# Property-based tests (hypothesis): the default profile keeps the suite fast and
# deterministic; HYPOTHESIS_PROFILE=long (with -m slow for the long-only variants) runs
# many more examples.
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is a dev extra; the property tests skip without it
    pass
else:
    import os

    settings.register_profile(
        "default",
        max_examples=10,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile(
        "long",
        max_examples=500,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
