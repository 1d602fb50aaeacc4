"""mkdocs hook (mkdocs.yml: ``hooks``): the environment the tutorials execute in.

The tutorials execute in Jupyter kernels started by the build, which inherit its environment.
``sbflow.fit`` and inference pin one intra-op thread themselves, but plain torch code in a
tutorial (a hand-written training loop) would use all cores; on a busy 2-core machine the
threads then wait on each other (tutorial 01's hand-written OT-CFM loop: 139 s of a 211 s
page). One thread is also what the suite's conftest uses.

Progress bars are switched off (``TQDM_DISABLE``): a static page would show every redraw of
the bar that a terminal overwrites (the ``!sbflow`` commands of tutorial 06 run in a
terminal). An explicit setting of any of these variables wins.
"""

from __future__ import annotations

import os
from typing import Any


def on_config(config: Any) -> Any:
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TQDM_DISABLE"):
        os.environ.setdefault(name, "1")
    return config
