"""Suite-wide settings.

The test problems are small: torch's intra-op thread pool costs more than it saves on them,
and on a shared 2-core machine oversubscription made tiny matmuls up to 100x slower. One
thread per test process keeps the suite fast and its timings stable.
"""

from __future__ import annotations

import torch

torch.set_num_threads(1)
