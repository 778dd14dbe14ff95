# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Dataset-specific exceptions (as :mod:`torchgeo.datasets.errors`)."""

import os

from torch.utils.data import Dataset
from torchgeo.datasets import DatasetNotFoundError


class ManualDownloadError(DatasetNotFoundError):
    """Raised when a dataset is missing or incomplete and must be fetched by hand.

    TorchGeo's message advises ``download=True``, which cannot help for datasets whose
    host offers no direct download; this one carries the exact manual steps instead.

    .. versionadded:: 0.1
    """

    def __init__(self, dataset: Dataset[object], instructions: str) -> None:
        """Initialize a new ManualDownloadError instance.

        Args:
            dataset: the dataset that was requested (its ``root`` is named).
            instructions: what is missing and exactly what to fetch and where to put it.
        """
        super().__init__(dataset)
        root = os.fspath(getattr(dataset, 'root', '?'))
        name = type(dataset).__name__
        # replace the parent's generic advice, which may wrongly suggest download=True
        self.args = (f'{name} not found in root={root!r}: {instructions}',)
