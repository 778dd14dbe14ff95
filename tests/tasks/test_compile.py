# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``ContinualPretraining(compile=True)`` computes the eager step, on a CPU, in fp32.

The task compiles its model's whole forward (student, teacher, projector, decoder) with
inductor; backward is compiled with it. Inductor fuses and reorders reductions (LayerNorm,
softmax, sums) and may use other matmul blockings, so the compiled step equals eager only up
to fp32 rounding: ``TOL`` = 1e-4 of the largest magnitude, for the loss and every gradient
(measured: about 1e-6). A wrong graph (a dropped mask, a stale teacher, a missed shift) is
off by 1e-2 or more.
"""

import copy
from typing import Any

import pytest
import torch
from torch import Tensor

import torchgeo_gfm.models  # noqa: F401  (registers gfm_swin_base)
from torchgeo_gfm.models.pretraining import simmim_mask
from torchgeo_gfm.tasks import ContinualPretraining

TOL = 1e-4
#: small Swins with the paper's window 6 (64 px: stages of 16, 8, 4, 2; windows padded)
STUDENT = {'embed_dim': 8, 'depths': (2, 2, 2, 1), 'num_heads': (1, 1, 2, 2)}
TEACHER = {'embed_dim': 12, 'depths': (1, 1, 1, 1), 'num_heads': (1, 1, 1, 1)}
SIZE = 64


def make_task(compile: bool) -> ContinualPretraining:
    torch.manual_seed(0)
    return ContinualPretraining(
        model_kwargs={**STUDENT, 'window_size': 6},
        teacher='swin_tiny_patch4_window7_224',
        teacher_weights=None,
        teacher_kwargs={**TEACHER, 'window_size': 2},
        teacher_size=32,
        compile=compile,
        plot_every_n_steps=0,
    ).train()


def relative_error(value: Tensor, reference: Tensor) -> float:
    return float((value - reference).abs().max() / reference.abs().max())


def step(task: ContinualPretraining, images: Tensor, mask: Tensor) -> dict[str, Any]:
    """Loss and gradients of one step."""
    task.zero_grad(set_to_none=True)
    losses = task.compute_loss(images, mask)
    losses['loss'].backward()
    grads = {n: p.grad for n, p in task.named_parameters() if p.grad is not None}
    return {'losses': {k: v.detach() for k, v in losses.items()}, 'grads': grads}


@pytest.fixture(scope='module')
def tasks() -> tuple[ContinualPretraining, ContinualPretraining]:
    eager, compiled = make_task(False), make_task(True)
    compiled.load_state_dict(eager.state_dict())
    return eager, compiled


def batch(seed: int) -> tuple[Tensor, Tensor]:
    """Images and a SimMIM mask of the paper's recipe (32 px blocks, 60 %)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, SIZE, SIZE, generator=generator)
    grid = (SIZE // 32, SIZE // 32)
    return images, simmim_mask(2, grid, 0.6, 32 // 4, images.device, generator)


@pytest.mark.slow
def test_compiled_step_equals_eager(
    tasks: tuple[ContinualPretraining, ContinualPretraining],
) -> None:
    eager, compiled = tasks
    assert compiled.model._compiled_call_impl is not None  # compiled, not eager twice
    images, mask = batch(0)
    ref, out = step(eager, images, mask), step(compiled, images, mask)
    for name in ('loss', 'loss_mim', 'loss_distill'):
        error = relative_error(out['losses'][name], ref['losses'][name])
        assert error <= TOL, f'{name}: {error:.1e}'
    assert out['grads'].keys() == ref['grads'].keys()
    assert not any(name.startswith('model.teacher') for name in ref['grads'])
    for name, grad in ref['grads'].items():
        error = relative_error(out['grads'][name], grad)
        assert error <= TOL, f'{name}: {error:.1e}'


@pytest.mark.slow
def test_compiled_training_tracks_eager(
    tasks: tuple[ContinualPretraining, ContinualPretraining],
) -> None:
    start = copy.deepcopy(tasks[0].state_dict())
    runs = []
    for task in tasks:
        task.load_state_dict(start)
        optimizer = task.build_optimizer(lr_scale=10.0)  # a visible step
        losses = []
        for i in range(4):
            images, mask = batch(i)
            loss = step(task, images, mask)['losses']['loss']
            torch.nn.utils.clip_grad_norm_(task.parameters(), 5.0)
            optimizer.step()
            losses.append(loss)
        runs.append(torch.stack(losses))
    eager, compiled = runs
    assert not torch.allclose(eager[0], eager[-1])  # training moved the loss
    assert relative_error(compiled, eager) <= 10 * TOL  # rounding, grown over 4 steps
