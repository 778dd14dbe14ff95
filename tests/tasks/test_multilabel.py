# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

import pytest
import torch

from torchgeo_gfm.tasks import MultiLabelClassification


def average_precision(scores: list[float], labels: list[int]) -> float:
    """AP by hand: mean of the precisions at the rank of each positive."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    hits, total = 0, 0.0
    for rank, i in enumerate(order, 1):
        if labels[i]:
            hits += 1
            total += hits / rank
    return total / hits


def test_map_on_known_inputs() -> None:
    task = MultiLabelClassification(
        model='resnet18', task='multilabel', num_labels=2, loss='bce'
    )
    logits = torch.tensor([[2.0, -1.0], [0.5, 1.5], [-1.0, 0.2], [1.0, -2.0]])
    target = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]])
    task.test_metrics.update(logits, target)
    out = task.test_metrics.compute()
    probs = logits.sigmoid()
    micro = average_precision(probs.flatten().tolist(), target.flatten().tolist())
    macro = (
        sum(
            average_precision(probs[:, j].tolist(), target[:, j].tolist())
            for j in range(2)
        )
        / 2
    )
    assert out['test_mAP'].item() == pytest.approx(micro)
    assert out['test_mAP_macro'].item() == pytest.approx(macro)
    assert 'test_OverallF1Score' in out  # TorchGeo's metrics are kept


def test_multiclass_unchanged() -> None:
    task = MultiLabelClassification(model='resnet18', task='multiclass', num_classes=3)
    assert 'mAP' not in task.val_metrics
