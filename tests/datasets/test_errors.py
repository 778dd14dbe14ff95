# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

from pathlib import Path

import pytest
from torch.utils.data import Dataset
from torchgeo.datasets import DatasetNotFoundError

from torchgeo_gfm.datasets import ManualDownloadError


class Missing(Dataset[object]):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.download = False


class TestManualDownloadError:
    def test_message(self, tmp_path: Path) -> None:
        error = ManualDownloadError(Missing(tmp_path), 'fetch it from example.org')
        assert isinstance(error, DatasetNotFoundError)
        assert str(error) == (
            f'Missing not found in root={str(tmp_path)!r}: fetch it from example.org'
        )
        # TorchGeo's advice would be wrong for a dataset without a direct download
        assert 'download=True' not in str(error)

    def test_raise(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match=r'example\.org'):
            raise ManualDownloadError(Missing(tmp_path), 'example.org')
