"""Sample sets: built-in generators (`sample_dataset`) and file loaders (`load_samples`).

Example:
    >>> import torch, sbflow.data as data
    >>> data.sample_dataset("8gaussians", 4, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([4, 2])
"""

from sbflow.data.images import pixels, unpixels
from sbflow.data.io import SAMPLE_SUFFIXES, atomic_path, load_samples, save_samples, subsample
from sbflow.data.toy import DATASETS, DatasetInfo, dataset_names, sample_dataset

__all__ = [
    "DATASETS",
    "SAMPLE_SUFFIXES",
    "DatasetInfo",
    "atomic_path",
    "dataset_names",
    "load_samples",
    "pixels",
    "sample_dataset",
    "save_samples",
    "subsample",
    "unpixels",
]
