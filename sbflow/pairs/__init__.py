"""Where training pairs come from: independent, coupled, given (matched) or model-generated.

See :mod:`sbflow.pairs.sources`. :class:`~sbflow.training.batches.PathBatches` takes one
pair source per interval; :func:`sbflow.fit` builds them from its inputs (``paired=True``
for matched samples) and a method's rounds (generated pairs).

Example:
    >>> import torch
    >>> from sbflow.pairs import IndependentPairs
    >>> x0, x1 = IndependentPairs(torch.zeros(4, 2), torch.ones(4, 2)).draw(2, torch.Generator())
    >>> x0.shape, x1.shape
    (torch.Size([2, 2]), torch.Size([2, 2]))
"""

from sbflow.pairs.sources import (
    CoupledPairs,
    GeneratedPairs,
    GivenPairs,
    IndependentPairs,
    PairSource,
)

__all__ = ["CoupledPairs", "GeneratedPairs", "GivenPairs", "IndependentPairs", "PairSource"]
