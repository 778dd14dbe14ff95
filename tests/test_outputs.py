# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""torchgeo_gfm.outputs: the one output check and atomic writer, signals, stale partials."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchgeo_gfm.outputs import (
    OutputError,
    atomic_output,
    check_output,
    check_outputs,
    looks_like_url,
    remove_stale_partials,
    same_file,
    sigterm_exits,
    temporary_output,
)

PACKAGE = Path(__file__).parents[1] / 'torchgeo_gfm'
# plain file names, glob's special characters included; no '/', no leading '.'
NAMES = st.text(
    st.characters(codec='utf-8', exclude_characters='/\0'), min_size=1, max_size=40
).filter(lambda n: not n.startswith('.') and len(n.encode()) < 200)
FUNCTION = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if '.partial-' in p.name)


@pytest.mark.parametrize('overwrite', [False, True])
def test_a_new_file_passes(overwrite: bool, tmp_path: Path) -> None:
    assert check_output(tmp_path / 'a.tif', overwrite=overwrite) == tmp_path / 'a.tif'


@given(name=NAMES)
@FUNCTION
def test_existing_file_needs_overwrite(name: str, tmp_path: Path) -> None:
    out = tmp_path / name
    out.write_text('mine')
    with pytest.raises(OutputError, match='pass --force to replace it'):
        check_output(out, option='--force')
    assert check_output(out, overwrite=True) == out
    with atomic_output(out) as tmp:
        tmp.write_text('new')
    assert out.read_text() == 'new'
    assert partials(tmp_path) == []
    out.unlink()


@pytest.mark.parametrize('path', ['/dev/null', '/dev/stdout', '/dev/zero', '/proc/x'])
def test_system_files_are_never_written(path: str) -> None:
    with pytest.raises(OutputError, match='device or system file'):
        check_output(path, overwrite=True)


def test_fifo_socket_and_link_to_device_are_refused(tmp_path: Path) -> None:
    import socket

    os.mkfifo(tmp_path / 'fifo')
    link = tmp_path / 'null'
    link.symlink_to('/dev/null')
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / 'sock'))
        for name in ('fifo', 'sock'):
            with pytest.raises(OutputError, match='not a regular file'):
                check_output(tmp_path / name, overwrite=True)
    with pytest.raises(OutputError, match='device or system file'):
        check_output(link, overwrite=True)


def test_folders_and_missing_or_unwritable_parents(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match='is a folder'):
        check_output(tmp_path, overwrite=True)
    with pytest.raises(OutputError, match='missing or not writable'):
        check_output(tmp_path / 'no' / 'a.tif')
    (tmp_path / 'file').touch()
    with pytest.raises(OutputError, match='missing or not writable'):
        check_output(tmp_path / 'file' / 'a.tif')
    with pytest.raises(OutputError, match='empty'):
        check_output('')
    locked = tmp_path / 'locked'
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):  # root writes anywhere
        pytest.skip('running as root: permissions are not enforced')
    with pytest.raises(OutputError, match='not writable'):
        check_output(locked / 'a.tif')


def test_output_folders(tmp_path: Path) -> None:
    assert check_output(tmp_path / 'new', folder=True) == tmp_path / 'new'
    (tmp_path / 'empty').mkdir()
    assert check_output(tmp_path / 'empty', folder=True)
    (tmp_path / 'empty' / 'x').touch()
    with pytest.raises(OutputError, match='not empty'):
        check_output(tmp_path / 'empty', folder=True, overwrite=True)
    with pytest.raises(OutputError, match='is a file'):
        check_output(tmp_path / 'empty' / 'x', folder=True, overwrite=True)


@pytest.mark.parametrize('exists', [True, False])
@given(spelling=st.sampled_from(['same', 'dots', 'symlink', 'hardlink', 'relative']))
@FUNCTION
def test_inputs_are_never_replaced(
    exists: bool, spelling: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / 'sub' / 'in.tif'
    source.parent.mkdir(exist_ok=True)
    if exists:
        source.write_bytes(b'input')
    elif spelling == 'hardlink':
        return  # a hard link needs an existing file
    monkeypatch.chdir(tmp_path)
    other = tmp_path / f'{spelling}.tif'
    other.unlink(missing_ok=True)
    if spelling == 'symlink':
        other.symlink_to(source)
    elif spelling == 'hardlink':
        os.link(source, other)
    out = {
        'same': source,
        'dots': tmp_path / 'sub' / '..' / 'sub' / 'in.tif',
        'relative': Path('sub/in.tif'),
    }.get(spelling, other)
    assert same_file(out, source)
    with pytest.raises(OutputError, match='is the input'):
        check_output(out, overwrite=True, protect=[source])
    with pytest.raises(OutputError, match='same file'):
        check_outputs([out, None, source], overwrite=True)
    if exists:
        assert source.read_bytes() == b'input'


def test_check_outputs_passes_none_and_distinct_paths(tmp_path: Path) -> None:
    a, b = tmp_path / 'a.tif', tmp_path / 'b.gpkg'
    assert check_outputs([a, None, b]) == [a, None, b]
    a.touch()
    with pytest.raises(OutputError, match='--overwrite'):
        check_outputs([a, b])


@pytest.mark.parametrize('umask', [0o022, 0o077, 0o002, 0o027])
@pytest.mark.parametrize('writer', ['open', 'mkstemp-like', 'folder'])
def test_result_has_the_umask_mode(umask: int, writer: str, tmp_path: Path) -> None:
    final = tmp_path / 'out'
    old = os.umask(umask)
    try:
        with atomic_output(final) as tmp:
            if writer == 'open':
                tmp.write_text('x')
            elif writer == 'folder':
                os.mkdir(tmp, 0o700)
            else:  # what tempfile.mkstemp and safetensors do
                os.close(os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600))
    finally:
        os.umask(old)
    default = 0o777 if writer == 'folder' else 0o666
    assert stat.S_IMODE(final.stat().st_mode) == default & ~umask


def test_a_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    final = tmp_path / 'out'
    final.write_text('old')
    final.chmod(0o640)
    with atomic_output(final) as tmp:
        tmp.write_text('new')
    assert stat.S_IMODE(final.stat().st_mode) == 0o640
    assert final.read_text() == 'new'


@pytest.mark.parametrize('error', [RuntimeError, KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize('folder', [False, True])
def test_a_failed_block_leaves_nothing(
    error: type[BaseException], folder: bool, tmp_path: Path
) -> None:
    final = tmp_path / 'out.tif'

    def write(tmp: Path) -> None:
        assert tmp.name.startswith(f'.out.tif.partial-{os.getpid()}-')
        assert tmp.suffix == '.tif'
        if folder:
            (tmp / 'sub').mkdir(parents=True)
            (tmp / 'sub' / 'x').touch()
        else:
            tmp.write_text('half')
        raise error()

    with pytest.raises(error), atomic_output(final, '.tif') as tmp:
        write(tmp)
    assert list(tmp_path.iterdir()) == []


def test_nothing_written_is_an_error(tmp_path: Path) -> None:
    with (
        pytest.raises(OutputError, match='nothing was written'),
        atomic_output(tmp_path / 'a'),
    ):
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_folder_replaces_an_empty_folder(tmp_path: Path) -> None:
    final = tmp_path / 'shards'
    final.mkdir()
    with atomic_output(final) as tmp:
        tmp.mkdir()
        (tmp / 'index.json').write_text('{}')
    assert [p.name for p in tmp_path.iterdir()] == ['shards']
    assert (final / 'index.json').read_text() == '{}'


def test_temporary_output_is_always_removed(tmp_path: Path) -> None:
    with temporary_output(tmp_path / 'a.tif', '.tiled.tif') as tmp:
        tmp.write_text('x')
    assert list(tmp_path.iterdir()) == []


def _script(body: str) -> str:
    """A Python program importing the package's outputs and cli without torch (fast)."""
    return textwrap.dedent(f"""
        import sys, time, types
        from pathlib import Path
        package = types.ModuleType('torchgeo_gfm')
        package.__path__ = [{str(PACKAGE)!r}]
        sys.modules['torchgeo_gfm'] = package
        from torchgeo_gfm.outputs import atomic_output
        final = Path(sys.argv[1])
        """) + textwrap.dedent(body)


def _start(body: str, final: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, '-c', _script(body), str(final)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == 'writing'  # the partial exists now
    assert partials(final.parent)
    return proc


BLOCKED_WRITE = """
    with atomic_output(final) as tmp:
        tmp.write_text('half')
        print('writing', flush=True)
        time.sleep(60)
"""
# the same, run as a sub-command of the console script (which installs the handler)
BLOCKED_COMMAND = (
    """
    import torchgeo_gfm.cli as cli
    command = types.ModuleType('blocked')
    command.add_arguments = lambda parser: None
    def run(args):
"""
    + textwrap.indent(textwrap.dedent(BLOCKED_WRITE), '        ')
    + """
    command.run = run
    sys.modules['blocked'] = command
    cli.COMMANDS['blocked'] = ('blocked', 'writes, then waits')
    raise SystemExit(cli.main(['blocked']))
"""
)


@pytest.mark.parametrize(
    ('body', 'sig', 'status'),
    [
        (BLOCKED_COMMAND, signal.SIGTERM, 143),
        (
            'from torchgeo_gfm.outputs import sigterm_exits\nwith sigterm_exits():\n'
            + textwrap.indent(textwrap.dedent(BLOCKED_WRITE), '    '),
            signal.SIGTERM,
            143,
        ),
        (BLOCKED_WRITE, signal.SIGINT, -signal.SIGINT),  # dies by SIGINT after cleanup
    ],
    ids=['cli-sigterm', 'sigterm_exits', 'sigint'],
)
def test_signals_remove_the_partial(
    body: str, sig: signal.Signals, status: int, tmp_path: Path
) -> None:
    final = tmp_path / 'out.tif'
    proc = _start(body, final)
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == status
    assert list(tmp_path.iterdir()) == []


def test_a_killed_run_leaves_a_partial_that_the_next_run_removes(
    tmp_path: Path,
) -> None:
    final = tmp_path / 'out.tif'
    proc = _start(BLOCKED_WRITE, final)
    proc.kill()
    proc.wait(timeout=30)
    (stale,) = partials(tmp_path)
    assert stale.startswith(f'.out.tif.partial-{proc.pid}-')
    # a live process's partial (this one's) is left alone
    live = tmp_path / f'.out.tif.partial-{os.getpid()}-0123abcd'
    live.write_text('in progress')
    other = tmp_path / f'.other.tif.partial-{proc.pid}-0123abcd'
    other.write_text('another output')
    with (
        pytest.warns(UserWarning, match=stale.replace('.', r'\.')),
        atomic_output(final) as tmp,
    ):
        tmp.write_text('done')
    assert final.read_text() == 'done'
    assert partials(tmp_path) == sorted([live.name, other.name])
    assert remove_stale_partials(final) == []


@given(name=NAMES)
@FUNCTION
def test_stale_partials_of_any_name(name: str, tmp_path: Path) -> None:
    final = tmp_path / name
    dead = 2**22 + 1  # above Linux's pid_max default; never a running process
    stale = tmp_path / f'.{name}.partial-{dead}-00ff.tif'
    stale.write_text('x')
    with pytest.warns(UserWarning, match='no longer runs'):
        assert remove_stale_partials(final) == [stale]
    assert not stale.exists()


def test_sigterm_exits_only_in_the_main_thread() -> None:
    import threading

    seen = []

    def worker() -> None:
        with sigterm_exits():
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [before]
    with sigterm_exits():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize('finish', [True, False])
def test_cog_writer_tags_mode_and_partials(finish: bool, tmp_path: Path) -> None:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from torchgeo_gfm.scene.writers import COGWriter

    final = tmp_path / 'classes.tif'
    profile = {
        'count': 1,
        'dtype': 'uint8',
        'nodata': 255,
        'crs': 'EPSG:32618',
        'transform': from_origin(0, 64, 1, 1),
        'height': 64,
        'width': 64,
    }
    old = os.umask(0o027)
    try:
        writer = COGWriter(final, profile, tags={'precision': 'fp32', 'model': 'x'})
        writer.write(Window(0, 0, 64, 64), np.ones((1, 64, 64), np.uint8))
        assert partials(tmp_path)  # the tiled GTiff, hidden
        writer.finish() if finish else writer.abort()
    finally:
        os.umask(old)
    assert partials(tmp_path) == []
    if not finish:
        assert list(tmp_path.iterdir()) == []
        return
    assert stat.S_IMODE(final.stat().st_mode) == 0o640
    with rasterio.open(final) as src:
        assert src.tags()['precision'] == 'fp32'
        assert src.tags()['model'] == 'x'
        assert src.read(1).min() == 1


@pytest.mark.parametrize(
    'path',
    ['a\0b', 's3://bucket/x', 'S3:x', 'ftp://host/x', 'hf://x', 's3//bucket', 'C:\\x'],
)
def test_nul_and_url_like_paths_are_refused(
    path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for folder in (False, True):
        with pytest.raises(OutputError):
            check_output(path, folder=folder)
    assert list(tmp_path.iterdir()) == []
    assert check_output('./x:y') == Path('x:y')  # a colon spelled as a local path


@given(scheme=st.from_regex(r'[A-Za-z][A-Za-z0-9+.-]{0,8}', fullmatch=True), rest=NAMES)
@FUNCTION
def test_scheme_colon_anything_looks_like_a_url(scheme: str, rest: str) -> None:
    assert looks_like_url(f'{scheme}:{rest}')
    assert not looks_like_url(f'./{scheme}:{rest}')


def test_a_file_path_ending_with_a_slash_is_refused(tmp_path: Path) -> None:
    # Path() drops the slash: 'out.tif/' would be written as the file out.tif
    with pytest.raises(OutputError, match='ends with a slash'):
        check_output(f'{tmp_path}/out.tif/')
    assert check_output(f'{tmp_path}/shards/', folder=True) == tmp_path / 'shards'
    assert list(tmp_path.iterdir()) == []


def test_a_name_longer_than_the_file_system_takes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match='the name is 300 bytes long'):
        check_output(tmp_path / ('x' * 300))
    with pytest.raises(OutputError, match='the name is 300 bytes long'):
        check_output(tmp_path / 'missing' / ('x' * 300), folder=True)


@pytest.mark.parametrize('length', [200, 230, 255])
def test_long_names_are_written_atomically(length: int, tmp_path: Path) -> None:
    """The partial's name is shortened (with a hash) where the output's fills the limit."""
    final = tmp_path / ('é' * (length // 2) + 'x' * (length % 2))
    check_output(final)
    with atomic_output(final, '.safetensors') as tmp:
        assert len(os.fsencode(tmp.name)) <= 255
        tmp.write_text('done')
    assert final.read_text() == 'done'
    assert partials(tmp_path) == []


def test_a_link_to_an_empty_folder_is_filled_through_the_link(tmp_path: Path) -> None:
    (tmp_path / 'real').mkdir()
    (tmp_path / 'link').symlink_to(tmp_path / 'real')
    check_output(tmp_path / 'link', folder=True)
    with atomic_output(tmp_path / 'link') as tmp:
        tmp.mkdir()
        (tmp / 'a').write_text('a')
    assert (tmp_path / 'link').is_symlink()
    assert (tmp_path / 'real' / 'a').read_text() == 'a'
