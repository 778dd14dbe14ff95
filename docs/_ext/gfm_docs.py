# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Sphinx helpers of the torchgeo-gfm site (loaded by ``docs/conf.py``).

* **Names as the docstring's author wrote them.** The API pages document each object where
  users import it (``torchgeo_gfm.models.GFM_Weights``), as TorchGeo does, while docstrings
  refer to names relative to the module that defines them (``:data:`SCENES``` in
  ``torchgeo_gfm/datasets/synthetic.py``) or by their defining module's path
  (``torchgeo_gfm.models.gfm_swin.checkpoint_filter_fn``). A reference to a ``torchgeo_gfm``
  object that Sphinx cannot find is retried relative to the defining module of the
  docstring it appears in, then by identity: the same Python object documented under its
  public name. Nothing is ignored: a reference that still finds no documented object stays
  a warning (an error with ``-W``).
* **viewcode backlinks** land on the object (see :func:`_viewcode_anchors`).
* **Private base classes** (``_ImageMaskDataset``) are replaced in "Bases:" by their own
  bases, so a page never points at an undocumented private class.
* The CLI page's ``--help`` output is written by the build (``_build/cli/*.txt``).
* ``reset_torch``: sphinx-gallery's per-tutorial reset (seed, 2 threads as in CI).
"""

import contextlib
import importlib
import io
import os
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

PACKAGE = 'torchgeo_gfm'
DOCS = Path(__file__).resolve().parents[1]


def reset_torch(gallery_conf: dict[str, Any], fname: str) -> None:
    """Seed every tutorial alike and keep it on few threads (CI has 2 cores).

    Args:
        gallery_conf: sphinx-gallery's configuration.
        fname: the tutorial being run.
    """
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(min(2, os.cpu_count() or 1))


def _import(path: str) -> Any:
    """The object at a dotted path, or None."""
    parts = path.split('.')
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


_SOURCE = re.compile(r'docstring of ([\w.]+)')


def _defining_scopes(node: nodes.Element) -> list[str]:
    """Module and class scopes of the docstring a reference node comes from."""
    match = _SOURCE.search(str(node.source or ''))
    if match is None:
        return []
    parts = match.group(1).split('.')
    return ['.'.join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def _resolve_alias(
    app: Sphinx, env: BuildEnvironment, node: nodes.Element, contnode: nodes.Element
) -> nodes.Element | None:
    """Resolve a ``torchgeo_gfm`` reference by defining module or identity."""
    if node.get('refdomain') != 'py':
        return None
    target: str = node['reftarget'].lstrip('.~')
    domain = env.get_domain('py')
    objects = domain.objects  # type: ignore[attr-defined]
    modname = node.get('py:module') or ''
    candidates = [f'{scope}.{target}' for scope in _defining_scopes(node)]
    if target.startswith(PACKAGE + '.'):
        candidates.append(target)
    elif not modname.startswith(PACKAGE) and not candidates:
        return None
    for name in candidates:
        if name in objects:
            return _make(app, env, node, contnode, name)
    # the same object documented under another (public) name
    for name in candidates:
        obj = _import(name)
        if obj is None or isinstance(obj, (str, int, float, tuple, bool)):
            continue
        last = name.rsplit('.', 1)[-1]
        for documented in objects:
            if documented.rsplit('.', 1)[-1] == last and _import(documented) is obj:
                return _make(app, env, node, contnode, documented)
    return None


def _make(
    app: Sphinx,
    env: BuildEnvironment,
    node: nodes.Element,
    contnode: nodes.Element,
    name: str,
) -> nodes.Element | None:
    """A reference node to a documented object."""
    domain = env.get_domain('py')
    found = domain.resolve_xref(
        env, node['refdoc'], app.builder, node['reftype'], name, node, contnode
    )
    if found is None:
        matches = domain.resolve_any_xref(
            env, node['refdoc'], app.builder, name, node, contnode
        )
        found = matches[0][1] if matches else None
    return found


def _public_bases(
    app: Sphinx, name: str, obj: Any, options: Any, bases: list[Any]
) -> None:
    """Replace private base classes by their bases (recursively)."""
    result: list[Any] = []
    todo = list(bases)
    while todo:
        base = todo.pop(0)
        if getattr(base, '__name__', '').startswith('_') and isinstance(base, type):
            todo[:0] = [b for b in base.__bases__ if b is not object]
        elif base not in result:
            result.append(base)
    bases[:] = result or [object]


def _viewcode_anchors(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Give each object the anchor that viewcode's "[docs]" backlink points at.

    viewcode links every object of a source module with the *first* module name under
    which it saw one of them documented (``torchgeo_gfm.datasets`` for
    ``torchgeo_gfm/datasets/utils.py``, from :class:`DegenerateImageError`), so an object
    of that file documented under its own module path gets a second id with that name.
    """
    from sphinx import addnodes

    modules = getattr(app.env, '_viewcode_modules', {})
    for signode in doctree.findall(addnodes.desc_signature):
        module, fullname = signode.get('module'), signode.get('fullname')
        if not module or not fullname or not signode['ids']:
            continue
        obj = _import(f'{module}.{fullname}')
        source = getattr(obj, '__module__', None) if obj is not None else None
        entry = modules.get(source) if isinstance(source, str) else None
        if not entry or not isinstance(entry, tuple):
            continue
        anchor = f'{entry[3]}.{fullname}'
        if anchor not in signode['ids']:
            signode['ids'].append(anchor)


def _write_if_changed(path: Path, text: str) -> None:
    """Write *text* unless the file holds it already (keeps incremental builds quick)."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def write_cli_help(app: Sphinx) -> None:
    """Write ``torchgeo-gfm [COMMAND] --help`` into ``_build/cli`` for the CLI page.

    Args:
        app: the Sphinx application.
    """
    from torchgeo_gfm.cli import COMMANDS, main

    out = DOCS / '_build' / 'cli'
    out.mkdir(parents=True, exist_ok=True)
    columns = os.environ.get('COLUMNS')
    os.environ['COLUMNS'] = '88'  # argparse wraps to the terminal width
    try:
        for name in ('torchgeo-gfm', *COMMANDS):
            args = [] if name == 'torchgeo-gfm' else [name]
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
                main([*args, '--help'])
            text = buffer.getvalue()
            if not text.startswith('usage:'):
                raise RuntimeError(
                    f'torchgeo-gfm {name} --help printed no usage: {text!r}'
                )
            _write_if_changed(out / f'{name}.txt', text)
        # one section per sub-command, so a new command appears without editing the page
        sections = []
        for name, (_, summary) in COMMANDS.items():
            title = f'``{name}``'
            sections += [
                title,
                '-' * len(title),
                '',
                summary[0].upper() + summary[1:] + '.',
                '',
                f'.. literalinclude:: ../_build/cli/{name}.txt',  # relative to api/cli.rst
                '   :language: text',
                '',
            ]
        _write_if_changed(out / 'commands.rst', '\n'.join(sections))
    finally:
        if columns is None:
            del os.environ['COLUMNS']
        else:
            os.environ['COLUMNS'] = columns


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the helpers.

    Args:
        app: the Sphinx application.

    Returns:
        Extension metadata.
    """
    app.connect('builder-inited', write_cli_help)
    app.connect('missing-reference', _resolve_alias)
    app.connect('autodoc-process-bases', _public_bases)
    app.connect('doctree-resolved', _viewcode_anchors)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
