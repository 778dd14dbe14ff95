# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Every place where torchgeo-gfm relies on another library's private names.

Each section below is one entry: the defect or missing hook it works around, the upstream
patch that makes it unnecessary (``upstream/<package>/<name>.patch``, with its regression
test), the versions it was verified against, and the code. ``tests/test_compat.py`` checks
each entry against the installed packages.

Nothing here runs at import: the module that needs an entry calls it when it needs it
(importing :mod:`torchgeo_gfm.models` registers GFM with TorchGeo; the shard writer and
reader allow ``http://`` object-storage endpoints; the shard writer keeps SIGINT; the
change detection task skips TorchGeo's figure code). This module imports only the
standard library; each entry imports the library it patches.

**Versions.** Each entry declares the range of its library's versions it was verified
for (lowest included, highest excluded). Outside that range, or where the private name is
gone or has changed type, an entry raises :class:`CompatError`, which names the entry,
the installed version and the upstream patch: a workaround that silently stopped working
would bring its defect back (Ctrl-C exiting with status 0, a validation crash...). Once
upstream releases a patch: require that release in ``pyproject.toml`` and delete the
entry, its callers' use of it and its test.

.. versionadded:: 0.2
"""

import contextlib
import functools
import importlib.metadata
import inspect
import re
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor
    from torch.nn import Module
    from torchgeo.datasets.utils import Sample
    from torchgeo.tasks import ChangeDetection
    from torchvision.models import WeightsEnum


class CompatError(RuntimeError):
    """An installed library no longer has the private name a workaround relies on.

    .. versionadded:: 0.2
    """


def _version(text: str) -> tuple[int, ...]:
    """``'0.2.76'`` -> ``(0, 2, 76)``; a pre-release counts as its release."""
    return tuple(int(part) for part in re.findall(r'\d+', text.split('+')[0])[:3])


@dataclass(frozen=True)
class Verified:
    """The versions of a library an entry was verified for: ``low <= version < high``."""

    #: the distribution (``pip install`` name)
    distribution: str
    #: lowest verified version (included)
    low: str
    #: first version not verified (excluded)
    high: str
    #: ``upstream/...`` patch that makes the entry unnecessary
    patch: str

    def __str__(self) -> str:
        return f'{self.distribution}>={self.low},<{self.high}'

    def fail(self, entry: str, problem: str) -> CompatError:
        """The error of *entry* when *problem* (what changed) is found."""
        installed = importlib.metadata.version(self.distribution)
        return CompatError(
            f'{problem}: this {self.distribution} version is not supported by '
            f'torchgeo-gfm\'s workaround "{entry}" (verified for {self}). Install '
            f'{self}, or check whether {self.distribution} {installed} still needs '
            f'{self.patch} and update torchgeo_gfm/_compat.py'
        )

    def check(self, entry: str) -> None:
        """Raise :class:`CompatError` unless the installed version is in the range."""
        installed = importlib.metadata.version(self.distribution)
        if not _version(self.low) <= _version(installed) < _version(self.high):
            raise self.fail(entry, f'{self.distribution} {installed} is installed')


# ---------------------------------------------------------------------------------------
# 1. GFM in TorchGeo's model registry (torchgeo.models.api._model, _model_weights)
#
# Why: ``torchgeo.models.get_model/get_weight/get_model_weights/list_models`` look models
# up in two private dicts of ``torchgeo.models.api``; TorchGeo 0.10 has no public hook to
# add one. upstream/torchgeo/gfm-weights.patch adds GFM to TorchGeo itself.
# ---------------------------------------------------------------------------------------

TORCHGEO_REGISTRY = Verified(
    'torchgeo', '0.10.1', '0.11', 'upstream/torchgeo/gfm-weights.patch'
)


def register_torchgeo_model(
    name: str, builder: Callable[..., 'Module'], weights: type['WeightsEnum']
) -> None:
    """Add *builder* (as *name*) and its *weights* to ``torchgeo.models``' registry.

    Args:
        name: the model's name for ``get_model``.
        builder: the model builder.
        weights: its weights enum.

    Raises:
        CompatError: if TorchGeo's registry is not the two dicts this expects, or
            ignores them.

    .. versionadded:: 0.2
    """
    entry = 'GFM in torchgeo.models'
    TORCHGEO_REGISTRY.check(entry)
    from torchgeo.models import api

    models, by_model = (
        getattr(api, '_model', None),
        getattr(api, '_model_weights', None),
    )
    if not isinstance(models, dict) or not isinstance(by_model, dict):
        raise TORCHGEO_REGISTRY.fail(
            entry, 'torchgeo.models.api._model/_model_weights are gone or not dicts'
        )
    models[name] = builder
    by_model[name] = by_model[builder] = weights
    member = next(iter(weights.__members__.values()))
    if (
        api.get_weight(str(member)) is not member
        or api.get_model_weights(name) is not weights
        or name not in api.list_models()
    ):
        raise TORCHGEO_REGISTRY.fail(
            entry, "torchgeo.models' registry ignores its private dicts"
        )


# ---------------------------------------------------------------------------------------
# 2. ChangeDetection's validation step without TorchGeo's figures
#    (torchgeo.tasks.ChangeDetection._shared_step and its hard-coded ``batch_idx < 10``)
#
# Why: TorchGeo 0.10.1 draws a figure of each validation batch below index 10 with
# ``K.VideoSequential``, which Kornia >= 0.8 refuses for a 2-date image with a 1-frame mask
# (upstream/torchgeo/change-detection-figures.patch), and a subclass cannot turn the
# figures off (upstream/torchgeo/figure-batches.patch adds ``BaseTask.num_plot_batches``).
# Calling the step with an index past that range skips the figure code and nothing else.
# ---------------------------------------------------------------------------------------

TORCHGEO_FIGURES = Verified(
    'torchgeo', '0.10.1', '0.11', 'upstream/torchgeo/figure-batches.patch'
)
#: TorchGeo draws validation figures for the batches below this index
TORCHGEO_FIGURE_BATCHES = 10


@functools.cache
def _checked_shared_step() -> Callable[..., 'Tensor']:
    """``ChangeDetection._shared_step``, once its signature is checked."""
    entry = 'ChangeDetection steps without figures'
    TORCHGEO_FIGURES.check(entry)
    from torchgeo.tasks import ChangeDetection

    step = getattr(ChangeDetection, '_shared_step', None)
    expected = ['self', 'batch', 'batch_idx', 'stage']
    if not callable(step) or list(inspect.signature(step).parameters) != expected:
        raise TORCHGEO_FIGURES.fail(
            entry,
            'torchgeo.tasks.ChangeDetection._shared_step(self, batch, batch_idx, stage) '
            'is gone or has changed',
        )
    return step


def change_detection_step(
    task: 'ChangeDetection', batch: 'Sample', batch_idx: int, stage: str
) -> 'Tensor':
    """TorchGeo's change detection step (loss, metrics), without its figures.

    Args:
        task: the task.
        batch: the batch.
        batch_idx: its index.
        stage: 'train', 'val' or 'test'.

    Returns:
        The loss.

    Raises:
        CompatError: if ``ChangeDetection._shared_step`` is gone or has changed.

    .. versionadded:: 0.2
    """
    step = _checked_shared_step()
    return step(task, batch, batch_idx + TORCHGEO_FIGURE_BATCHES, stage)


# ---------------------------------------------------------------------------------------
# 3. litdata's obstore client reaches http:// object storage
#    (litdata.streaming.downloader._OBSTORE_CLIENT_OPTIONS)
#
# Why: litdata uploads shards and prefetches chunks through obstore, whose client refuses
# plain HTTP unless ``allow_http`` is set, while its boto3 path follows the endpoint's
# scheme. The endpoint (``AWS_ENDPOINT_URL``) is the user's explicit choice: on-premise
# MinIO/Ceph and local test servers are often http://. HTTPS endpoints are unaffected.
# upstream/litdata/obstore-http-endpoint.patch sets it per store in litdata.
# ---------------------------------------------------------------------------------------

LITDATA_HTTP = Verified(
    'litdata', '0.2.76', '0.3', 'upstream/litdata/obstore-http-endpoint.patch'
)


def litdata_allow_http() -> None:
    """Let litdata's obstore client reach ``http://`` endpoints, as its boto3 path does.

    Idempotent; forked processes inherit it. Called by the shard writer and reader.

    Raises:
        CompatError: if litdata's module-wide obstore client options are gone.

    .. versionadded:: 0.2
    """
    entry = 'litdata obstore over http://'
    LITDATA_HTTP.check(entry)
    from litdata.streaming import downloader

    options = getattr(downloader, '_OBSTORE_CLIENT_OPTIONS', None)
    if not isinstance(options, dict):
        raise LITDATA_HTTP.fail(
            entry, 'litdata.streaming.downloader._OBSTORE_CLIENT_OPTIONS is gone'
        )
    options.setdefault('allow_http', 'true')


# ---------------------------------------------------------------------------------------
# 4. Ctrl-C during litdata's optimize stays the caller's
#    (the ``signal`` module as seen by litdata.processing.data_processor)
#
# Why: ``DataProcessor.run`` installs a SIGINT handler that ends the process with
# ``os._exit(0)`` and stays installed after ``optimize`` returns: Ctrl-C would exit with
# status 0, skip every ``finally`` (partial output and worker processes left behind).
# For the block, litdata's module sees a ``signal`` whose ``signal()`` leaves SIGINT
# alone; Ctrl-C then raises KeyboardInterrupt in the caller as usual.
# upstream/litdata/optimize-sigint.patch makes the handler stop the workers, raise
# KeyboardInterrupt and restore the previous handler when ``run`` ends.
# ---------------------------------------------------------------------------------------

LITDATA_SIGINT = Verified(
    'litdata', '0.2.76', '0.3', 'upstream/litdata/optimize-sigint.patch'
)


@contextlib.contextmanager
def litdata_keeps_off_sigint() -> Iterator[None]:
    """Keep litdata's ``optimize`` from taking SIGINT over while the block runs.

    Yields:
        Nothing; litdata's module has its ``signal`` back afterwards.

    Raises:
        CompatError: if litdata's data processor no longer uses the ``signal`` module.

    .. versionadded:: 0.2
    """
    entry = 'Ctrl-C during litdata optimize'
    LITDATA_SIGINT.check(entry)
    import signal

    from litdata.processing import data_processor

    real = getattr(data_processor, 'signal', None)
    if real is not signal:
        raise LITDATA_SIGINT.fail(
            entry, 'litdata.processing.data_processor.signal is not the signal module'
        )

    def install(signum: int, handler: Any) -> Any:
        if signum == signal.SIGINT:
            return signal.getsignal(signum)
        return signal.signal(signum, handler)

    public = {k: getattr(signal, k) for k in dir(signal) if not k.startswith('__')}
    data_processor.signal = types.SimpleNamespace(**public | {'signal': install})
    try:
        yield
    finally:
        data_processor.signal = signal
