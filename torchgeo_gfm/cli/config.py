# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""``torchgeo-gfm config``: list the shipped ``torchgeo fit`` configs, write one out.

The YAML files of the repository's ``configs/`` folder ship in the wheel as package data
(``torchgeo_gfm/configs/``), so a ``pip install torchgeo-gfm`` is enough to train::

    torchgeo-gfm config --list
    torchgeo-gfm config gfm_demo -o gfm_demo.yaml
    torchgeo fit --config gfm_demo.yaml

Names are paths relative to ``configs/`` without ``.yaml``: ``gfm``, ``gfm_demo``,
``finetune/dsifn``, ...

.. versionadded:: 0.1
"""

import argparse
import contextlib
import sys
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from ..outputs import OutputError, atomic_output, check_output

#: suffix of the shipped config files
SUFFIX = '.yaml'


def _root() -> Traversable:
    return files('torchgeo_gfm') / 'configs'


def _walk(node: Traversable, prefix: str = '') -> dict[str, Traversable]:
    found: dict[str, Traversable] = {}
    for child in node.iterdir():
        if child.is_dir():
            found |= _walk(child, f'{prefix}{child.name}/')
        elif child.name.endswith(SUFFIX):
            found[prefix + child.name.removesuffix(SUFFIX)] = child
    return found


def config_names() -> list[str]:
    """Names of the configs shipped with the package.

    Returns:
        Sorted names, e.g. ``['finetune/dsifn', ..., 'gfm', 'gfm_demo']``.

    .. versionadded:: 0.1
    """
    return sorted(_walk(_root()))


def read_config(name: str) -> str:
    """Text of a shipped config.

    Args:
        name: its name as listed by :func:`config_names` (a trailing ``.yaml`` is accepted).

    Returns:
        The YAML text, as shipped.

    Raises:
        KeyError: if no config has this name; the message lists the names.

    .. versionadded:: 0.1
    """
    configs = _walk(_root())
    key = name.removesuffix(SUFFIX)
    if key not in configs:
        raise KeyError(
            f'no config named {name!r}; choose one of: {", ".join(sorted(configs))}'
        )
    return configs[key].read_text(encoding='utf-8')


def _write(text: str, out: Path, name: str, force: bool) -> None:
    """Write *text* to *out* atomically, after the package's output check."""
    is_dir = False
    with contextlib.suppress(OSError, ValueError):  # a NUL byte: check_output says so
        is_dir = out.is_dir()
    if is_dir:  # the one refusal that can suggest the right path
        example = out / (Path(name).name.removesuffix(SUFFIX) + SUFFIX)
        raise OutputError(f'{out}: is a folder; give a file name, e.g. {example}')
    check_output(out, overwrite=force, option='--force')
    with atomic_output(out) as tmp, open(tmp, 'x', encoding='utf-8') as f:
        f.write(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``torchgeo-gfm config``.

    Args:
        parser: the sub-command's parser.

    .. versionadded:: 0.1
    """
    parser.add_argument(
        'name',
        nargs='?',
        help="config to write, as in the package's configs/ folder without .yaml "
        '(gfm, gfm_demo, finetune/dsifn, ...)',
    )
    parser.add_argument(
        '-o', '--output', type=Path, help='file to write (default: print to stdout)'
    )
    parser.add_argument(
        '--force', action='store_true', help='overwrite an existing output file'
    )
    parser.add_argument(
        '--list', action='store_true', help='list the shipped configs and exit'
    )


def run(args: argparse.Namespace) -> int:
    """Run ``torchgeo-gfm config``.

    Args:
        args: the parsed arguments.

    Returns:
        0 on success, 2 on bad arguments (reported on stderr).

    .. versionadded:: 0.1
    """
    if args.list:
        print('\n'.join(config_names()))
        return 0
    if not args.name:
        print(
            'torchgeo-gfm config: error: name a config (see --list), e.g. '
            '`torchgeo-gfm config gfm_demo -o gfm_demo.yaml`',
            file=sys.stderr,
        )
        return 2
    try:
        text = read_config(args.name)
    except KeyError as err:
        print(f'torchgeo-gfm config: error: {err.args[0]}', file=sys.stderr)
        return 2
    out: Path | None = args.output
    if out is None:
        sys.stdout.write(text)
        return 0
    try:
        _write(text, out, args.name, args.force)
    except (OutputError, OSError) as err:
        print(f'torchgeo-gfm config: error: {err}', file=sys.stderr)
        return 2
    print(f'wrote {out} (torchgeo fit --config {out})')
    return 0
