# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Old public names kept for one release after a rename, each with a DeprecationWarning.

A renamed module leaves a two-line module behind that calls :func:`moved`; a renamed class
or function is looked up through its package's ``__getattr__`` = :func:`renamed`. Both go
in the release named by :data:`REMOVED_IN`.

.. versionadded:: 0.2
"""

import importlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: the release that drops the old names
REMOVED_IN = '0.3'

_MISSING = object()


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f'{old} is deprecated: use {new} (the old name is removed in {REMOVED_IN})',
        DeprecationWarning,
        stacklevel=3,
    )


def moved(
    old: str, new: str | Sequence[str], names: Mapping[str, str] | None = None
) -> Callable[[str], Any]:
    """The ``__getattr__`` of a module renamed from *old* to *new*.

    Args:
        old: the old module's name (its ``__name__``).
        new: the module that now holds its names, or several, searched in order (the
            old module's contents went to more than one).
        names: attributes renamed as well (old -> new).

    Returns:
        A module ``__getattr__`` that warns, then returns the attribute from *new*.
    """
    modules = (new,) if isinstance(new, str) else tuple(new)

    def __getattr__(name: str) -> Any:
        target = (names or {}).get(name, name)
        if not name.startswith(
            '__'
        ):  # the import system probes __path__ & co: not ours
            for module in modules:
                value = getattr(importlib.import_module(module), target, _MISSING)
                if value is not _MISSING:
                    _warn(f'{old}.{name}', f'{module}.{target}')
                    return value
        raise AttributeError(f'module {old!r} has no attribute {name!r}')

    return __getattr__


def renamed(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of a package whose public names *names* (old -> new) changed.

    Args:
        package: the package's ``__name__``.
        names: old name -> new name, both attributes of *package*.

    Returns:
        A module ``__getattr__`` that warns, then returns the new attribute.
    """
    module = importlib.import_module(package)

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f'module {package!r} has no attribute {name!r}')
        _warn(f'{package}.{name}', f'{package}.{names[name]}')
        return getattr(module, names[name])

    return __getattr__
