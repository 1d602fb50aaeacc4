"""Settings for the docstring examples of ``sbflow/`` (run by ``pytest``, see pyproject.toml).

Every example sees ``torch``, ``np`` (NumPy) and ``sbflow`` without importing them, starts from
``torch.manual_seed(0)`` on one torch thread, runs in an empty temporary directory (examples
that save files leave nothing behind) and draws with matplotlib's non-interactive Agg backend.
The settings of ``tests/`` live in ``tests/conftest.py``.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

try:  # exported by newer pytest versions
    from pytest import DoctestItem
except ImportError:  # pragma: no cover
    from _pytest.doctest import DoctestItem

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _doctest_setup(request: pytest.FixtureRequest) -> None:
    """Fill the namespace of a docstring example and make its run reproducible."""
    if not isinstance(request.node, DoctestItem):
        return
    import sbflow  # here, not at the top: a broken import fails the examples, not the suite

    namespace = request.getfixturevalue("doctest_namespace")
    namespace.update(torch=torch, np=np, sbflow=sbflow)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    request.getfixturevalue("monkeypatch").chdir(request.getfixturevalue("tmp_path"))
