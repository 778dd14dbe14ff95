# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""The built documentation site, checked as a reader would (run ``make docs`` first).

Skipped unless ``docs/_build/html`` exists. Every internal link of every page must lead to
a file (and to an anchor in it, where it names one), every ``<img>`` file must exist, and,
where Chromium is installed (Debian: ``apt-get install chromium``), a headless browser must
load the home page and the tutorials with every image decoded at a non-zero size.
"""

import importlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

SITE = Path(__file__).resolve().parents[2] / 'docs' / '_build' / 'html'
TUTORIALS = (
    'generated/tutorials/index.html',
    'generated/tutorials/tutorial_01_gfm_features.html',
)

pytestmark = pytest.mark.skipif(
    not (SITE / 'index.html').exists(),
    reason=f'{SITE} not built (run `make docs` first)',
)


class _Page(HTMLParser):
    """Links, images and anchors of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []
        self.anchors: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or '' for k, v in attrs}
        for key in ('id', 'name') if tag == 'a' else ('id',):
            if a.get(key):
                self.anchors.add(a[key])
        if tag == 'a' and 'href' in a:
            self.links.append(a['href'])
        elif tag == 'img':
            self.images.append(a.get('src', ''))
        elif tag == 'link' and a.get('rel') == 'stylesheet' and 'href' in a:
            self.links.append(a['href'])
        elif tag == 'script' and a.get('src'):
            self.links.append(a['src'])


@cache
def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding='utf-8'))
    return page


def pages() -> list[Path]:
    return sorted(SITE.rglob('*.html'))


def local(page: Path, url: str) -> tuple[Path, str] | None:
    """The file and anchor an internal URL of *page* points to; None if external."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme or parts.netloc or url.startswith('//'):
        return None
    path = urllib.parse.unquote(parts.path)
    target = (page.parent / path).resolve() if path else page
    if target.is_dir():
        target = target / 'index.html'
    return target, urllib.parse.unquote(parts.fragment)


def test_site_has_every_section() -> None:
    names = {p.relative_to(SITE).as_posix() for p in pages()}
    for expected in (
        'index.html',
        'api/models.html',
        'api/weights.html',
        'api/cli.html',
        'user_guide/install.html',
        'user_guide/pretraining.html',
        'backbone.html',
        'scene.html',
        'export.html',
        'api/export.html',
        *TUTORIALS,
    ):
        assert expected in names


@pytest.mark.parametrize(
    'package',
    [
        'datasets',
        'datamodules',
        'models',
        'tasks',
        'transforms',
        'scene',
        'precision',
        'arp',
        'sensors',
        'export',
    ],
)
def test_every_public_object_is_documented(package: str) -> None:
    module = importlib.import_module(f'torchgeo_gfm.{package}')
    names = getattr(module, '__all__', None) or [
        n
        for n, o in vars(module).items()
        if not n.startswith('_')
        and getattr(o, '__module__', None) == module.__name__
        and callable(o)
    ]
    page = (SITE / 'api' / f'{package}.html').read_text(encoding='utf-8')
    missing = [n for n in names if f'id="{module.__name__}.{n}"' not in page]
    assert not missing, f'add to docs/api/{package}.rst: {missing}'


def test_internal_links_resolve() -> None:
    broken: list[str] = []
    for page in pages():
        for url in parse(page).links:
            found = local(page, url)
            if found is None:
                continue
            target, anchor = found
            name = f'{page.relative_to(SITE)}: {url}'
            if not target.is_file():
                broken.append(f'{name} (no file {target})')
            elif (
                anchor
                and target.suffix == '.html'
                and anchor not in parse(target).anchors
            ):
                broken.append(f'{name} (no anchor #{anchor})')
    assert not broken, '\n'.join(broken[:50])


def test_images_exist() -> None:
    missing: list[str] = []
    count = 0
    for page in pages():
        for src in parse(page).images:
            found = local(page, src)
            if found is None:
                continue
            count += 1
            if not found[0].is_file() or found[0].stat().st_size == 0:
                missing.append(f'{page.relative_to(SITE)}: {src}')
    assert not missing, '\n'.join(missing[:50])
    assert count > 0, 'no image on any page: did the tutorials run?'


def test_tutorials_have_figures_and_output() -> None:
    for name in sorted((SITE / 'generated' / 'tutorials').glob('tutorial_*.html')):
        page = parse(name)
        figures = [s for s in page.images if 'sphx_glr_' in s and 'thumb' not in s]
        assert figures, f'{name.name}: no figure'
        assert 'sphx-glr-script-out' in name.read_text(encoding='utf-8'), name.name


# ------------------------------------------------------------------ headless Chromium
CHROMIUM = next(
    (
        p
        for p in ('/usr/bin/chromium', shutil.which('chromium') or '')
        if p and os.access(p, os.X_OK)
    ),
    None,
)


class _Browser:
    """Chromium driven over ``--remote-debugging-pipe`` (DevTools protocol; stdlib only)."""

    def __init__(self, executable: str, profile: str) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds() -> None:  # the protocol's pipe: fd 3 in, fd 4 out
            read, write = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.process = subprocess.Popen(
            [
                executable,
                '--headless',
                '--no-sandbox',
                '--disable-gpu',
                '--disable-dev-shm-usage',
                '--no-first-run',
                '--allow-file-access-from-files',
                f'--user-data-dir={profile}',
                '--remote-debugging-pipe',
                'about:blank',
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=fds,  # noqa: PLW1509
            close_fds=False,  # keep fds 3 and 4 (subprocess would close them after fds())
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b''
        self._id = 0

    def call(
        self, method: str, session: str | None = None, **params: Any
    ) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {'id': self._id, 'method': method, 'params': params}
        if session:
            message['sessionId'] = session
        os.write(self._to_child, json.dumps(message).encode() + b'\0')
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for reply in self._messages():
                if reply.get('id') == self._id:
                    if 'error' in reply:
                        raise RuntimeError(f'{method}: {reply["error"]}')
                    return reply['result']
        raise TimeoutError(method)

    def _messages(self) -> Iterator[dict[str, Any]]:
        chunk = os.read(self._from_child, 1 << 20)
        if not chunk:
            raise RuntimeError('Chromium exited')
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b'\0')
        for raw in complete:
            yield json.loads(raw)

    def images(self, url: str) -> list[dict[str, Any]]:
        """Load *url* and return its images once the page has loaded."""
        target = self.call('Target.createTarget', url=url)['targetId']
        session = self.call('Target.attachToTarget', targetId=target, flatten=True)[
            'sessionId'
        ]
        script = """new Promise(done => {
            const report = () => done(JSON.stringify({
                title: document.title,
                images: [...document.images].map(i => ({
                    src: i.currentSrc || i.src, complete: i.complete,
                    width: i.naturalWidth, height: i.naturalHeight}))}));
            const check = () => (location.href === URL && document.readyState === 'complete')
                ? report() : setTimeout(check, 50);
            check();
        })""".replace('URL', json.dumps(url))
        for _ in range(
            50
        ):  # the first evaluations may run in about:blank, then be cut off
            try:
                result = self.call(
                    'Runtime.evaluate',
                    session,
                    expression=script,
                    awaitPromise=True,
                    returnByValue=True,
                    timeout=30000,
                )
            except RuntimeError:
                time.sleep(0.1)
                continue
            if 'value' in result.get('result', {}):
                break
            time.sleep(0.1)
        self.call('Target.closeTarget', targetId=target)
        value = json.loads(result['result']['value'])
        assert value['title'], f'{url}: no title'
        return value['images']

    def close(self) -> None:
        try:
            self.call('Browser.close')
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_child)
        os.close(self._from_child)


@pytest.fixture(scope='module')
def browser() -> Iterator[_Browser]:
    if CHROMIUM is None:
        pytest.skip(
            'Chromium not installed (/usr/bin/chromium; Debian: apt-get install chromium)'
        )
    with tempfile.TemporaryDirectory() as profile:
        chromium = _Browser(CHROMIUM, profile)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.mark.slow
@pytest.mark.parametrize('name', ['index.html', *TUTORIALS])
def test_pages_render_in_chromium(browser: _Browser, name: str) -> None:
    images = browser.images((SITE / name).as_uri())
    broken = [
        i['src']
        for i in images
        if not i['complete'] or not i['width'] or not i['height']
    ]
    assert not broken, f'{name}: images that did not decode: {broken}'
    if name != 'index.html':
        figures = [i for i in images if 'sphx_glr_' in i['src']]
        assert figures, f'{name}: no figure rendered'
