# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Where shards live: local folders and object-storage URLs, checked before any work.

The writer refuses, before reading a single image, an OUT that litdata cannot write, that
would mix shards with other files, or an object store that is missing its backend
package, has no such bucket or refuses the credentials; :func:`output_target` then makes a
local OUT appear only complete and removes what was uploaded to S3 on failure. The reader
turns botocore's errors into what was not found or allowed (:func:`status_of`).

.. versionadded:: 0.2
"""

import contextlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...outputs import OutputError, atomic_output, check_output, looks_like_url

#: URL schemes litdata streams from (anything else is a local folder).
REMOTE_SCHEMES = ('s3://', 'gs://', 'azure://', 'hf://')
#: those it can also write shards to (litdata 0.2.7x's optimize)
WRITABLE_SCHEMES = ('s3://', 'gs://')
#: URL prefix -> (module, the pip package that provides it) litdata writes through
_BACKENDS = {
    's3://': ('boto3', 'boto3'),
    'gs://': ('google.cloud.storage', 'google-cloud-storage'),
}
#: what to do about missing or refused credentials
CREDENTIALS = (
    'set the object-storage credentials the standard way (AWS_ACCESS_KEY_ID, '
    'AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL for S3-compatible servers; '
    'GOOGLE_APPLICATION_CREDENTIALS for gs://) or pass storage_options'
)


def is_remote(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an object-storage URL rather than a local folder.

    Args:
        path: folder or URL.

    Returns:
        True for ``s3://``, ``gs://``, ``azure://`` and ``hf://`` URLs.

    .. versionadded:: 0.1
    """
    return os.fspath(path).startswith(REMOTE_SCHEMES)


def check_output_dir(
    output_dir: str | os.PathLike[str],
    storage_options: dict[str, Any] | None = None,
    root: str | os.PathLike[str] | None = None,
) -> str:
    """Refuse what litdata cannot write, to mix shards with other files, or the input.

    Args:
        output_dir: folder or URL to write the shards to.
        storage_options: object-storage client options (None: environment).
        root: the GeoPile root being sharded (OUT must not lie inside it).

    Returns:
        The URL, or the folder as an absolute path.

    Raises:
        OutputError: if the shards cannot or must not be written there.
    """
    output_dir = os.fspath(output_dir)
    if not output_dir.strip():
        raise OutputError(
            'the output is empty; give a new or empty folder, or an s3:// or gs:// URL'
        )
    if output_dir.startswith(WRITABLE_SCHEMES):
        _check_remote(output_dir, storage_options)
        return output_dir
    if is_remote(output_dir):
        raise OutputError(
            f'cannot write shards to {output_dir!r}: litdata uploads to '
            f'{" and ".join(WRITABLE_SCHEMES)} only. Write them to a local folder and '
            'upload it (e.g. `az storage blob upload-batch`), then stream from the URL'
        )
    if looks_like_url(output_dir):
        raise OutputError(
            f'cannot write shards to {output_dir!r}: it looks like a URL, and shards '
            f'are written to a local folder or to {" or ".join(WRITABLE_SCHEMES)} URLs '
            '(lower case, as in s3://bucket/prefix); fix the URL, or give a folder path '
            '(./NAME for a local folder whose name has a colon)'
        )
    if storage_options:
        raise OutputError(
            f'storage options are for s3:// and gs:// outputs; {output_dir!r} is a local '
            'folder: leave --storage-options out'
        )
    out = Path(output_dir).absolute()
    if root is not None and _inside(out, Path(root)):
        raise OutputError(
            f'{output_dir}: is inside the GeoPile root {os.fspath(root)}; shards written '
            'there would become part of the input: choose a folder outside it'
        )
    # missing folders are created by the write: check the first of them
    missing = [p for p in (out, *out.parents) if not os.path.lexists(p)]
    check_output(missing[-1] if missing else out, folder=True)
    return str(out)


def _inside(path: Path, folder: Path) -> bool:
    """Whether *path* (existing or not) is *folder* or lies under it, links resolved."""
    inner, outer = os.path.realpath(path), os.path.realpath(folder)
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a missing parent package
        return False


def _check_remote(url: str, storage_options: dict[str, Any] | None) -> None:
    """Refuse, before any work, a URL whose backend is missing or that refuses us."""
    prefix = url[: url.index('://') + 3]
    module, package = _BACKENDS[prefix]
    if not _installed(module):
        raise OutputError(
            f'cannot write shards to {url!r}: {prefix} needs the {package!r} package, '
            f'which is not installed; `pip install {package}` or write to a local folder'
        )
    if not url[len(prefix) :].split('/', 1)[0]:
        raise OutputError(f'{url!r} names no bucket; expected {prefix}BUCKET/PREFIX')
    if prefix == 's3://':
        _check_s3(url, storage_options)


def _split_s3(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b/`` -> ``('bucket', 'a/b/')``: bucket, prefix of its objects."""
    bucket, _, prefix = url.removeprefix('s3://').partition('/')
    prefix = prefix.strip('/')
    return bucket, f'{prefix}/' if prefix else ''


def _check_s3(url: str, storage_options: dict[str, Any] | None) -> None:
    """Ask the S3 server whether the bucket exists, is empty there, and lets us in."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    options = storage_options or {}
    bucket, prefix = _split_s3(url)
    if 'aws_access_key_id' not in options and boto3.Session().get_credentials() is None:
        raise OutputError(f'no object-storage credentials for {url!r}; {CREDENTIALS}')
    try:
        client = boto3.client('s3', **options)
        client.head_bucket(Bucket=bucket)
        listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except ClientError as error:
        status = status_of(error)
        reason = {
            '403': 'the credentials are wrong or lack permission',
            '404': f'bucket {bucket!r} does not exist',
        }.get(status, str(error))
        raise OutputError(
            f'cannot write shards to {url!r}: {reason} (HTTP {status}); {CREDENTIALS}'
        ) from None
    except (BotoCoreError, TypeError, ValueError) as error:  # endpoint, bad options
        raise OutputError(
            f'cannot write shards to {url!r} ({type(error).__name__}: {error}); '
            f'{CREDENTIALS}'
        ) from None
    if listed.get('KeyCount', len(listed.get('Contents', []))):
        raise OutputError(
            f'cannot write shards to {url!r}: it already holds objects (e.g. '
            f'{listed["Contents"][0]["Key"]!r}); shards are never mixed with other '
            'files: choose a new prefix'
        )


@contextlib.contextmanager
def output_target(
    output_dir: str, storage_options: dict[str, Any] | None = None
) -> Iterator[str]:
    """Where ``optimize`` writes: the URL, or a local partial folder renamed when done.

    A local OUT appears only complete (:func:`~torchgeo_gfm.outputs.atomic_output`);
    missing parent folders are created, and removed again on failure. On an S3 URL,
    whose prefix was checked to be empty, what was uploaded is deleted on failure.

    Args:
        output_dir: a checked :func:`check_output_dir` result.
        storage_options: object-storage client options (None: environment).

    Yields:
        The URL or the partial folder to write to.
    """
    if is_remote(output_dir):
        try:
            yield output_dir
        except (
            BaseException
        ):  # the prefix was empty (checked): remove what was uploaded
            _remove_remote(output_dir, storage_options)
            raise
        return
    out = Path(output_dir)
    created = [p for p in out.parents if not p.exists()]  # deepest first
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_output(out) as tmp:
            yield str(tmp)
    except BaseException:
        for folder in created:
            with contextlib.suppress(OSError):  # not empty: no longer only ours
                folder.rmdir()
        raise


def _remove_remote(url: str, storage_options: dict[str, Any] | None) -> None:
    """Delete the objects under an S3 URL's prefix (best effort: errors are ignored)."""
    if not url.startswith('s3://'):
        return  # gs:// is not cleaned up (untested here: no GCS server in the tests)
    with contextlib.suppress(Exception):
        import boto3

        bucket, prefix = _split_s3(url)
        client = boto3.client('s3', **(storage_options or {}))
        pages = client.get_paginator('list_objects_v2').paginate(
            Bucket=bucket, Prefix=prefix
        )
        for page in pages:
            keys = [{'Key': o['Key']} for o in page.get('Contents', [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={'Objects': keys})


def status_of(error: BaseException) -> str:
    """HTTP status of a botocore error in ``error``'s chain ('' if none).

    Args:
        error: an exception, perhaps caused by a botocore ``ClientError``.

    Returns:
        The status (``'404'``) or error code (``'InvalidAccessKeyId'``), or ''.
    """
    cause: BaseException | None = error
    while cause is not None:
        response = getattr(cause, 'response', None)
        if isinstance(response, dict):
            meta = response.get('ResponseMetadata', {})
            code = response.get('Error', {}).get('Code', '')
            return str(meta.get('HTTPStatusCode', code))
        cause = cause.__cause__ or cause.__context__
    return ''


def bucket_exists(url: str, storage_options: dict[str, Any] | None) -> bool | None:
    """Whether the S3 bucket of ``url`` exists (None if that cannot be told).

    Args:
        url: an ``s3://`` URL.
        storage_options: object-storage client options (None: environment).

    Returns:
        True, False, or None when the server does not say.
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        boto3.client('s3', **(storage_options or {})).head_bucket(
            Bucket=_split_s3(url)[0]
        )
    except ClientError as error:
        return False if status_of(error) == '404' else None
    except BotoCoreError:
        return None
    return True


#: the key of index.json under which the writer records what litdata does not (sensor)
INDEX_KEY = 'torchgeo_gfm'


def add_to_index(
    target: str, metadata: dict[str, Any], storage_options: dict[str, Any] | None
) -> None:
    """Record ``metadata`` in the written shards' index.json, under :data:`INDEX_KEY`.

    litdata's reader ignores keys it does not know, and it downloads index.json (and
    only it) when a dataset is opened: the reader learns the sensor at no extra cost.

    Args:
        target: the folder or URL ``optimize`` has just written.
        metadata: JSON-serialisable data.
        storage_options: object-storage client options (None: environment).
    """
    if not is_remote(target):
        _add_to_index_file(Path(target, 'index.json'), metadata)
        return
    from litdata.streaming.fs_provider import GCPFsProvider, S3FsProvider

    provider_class = S3FsProvider if target.startswith('s3://') else GCPFsProvider
    provider = provider_class(storage_options=storage_options or {})
    url = f'{target.rstrip("/")}/index.json'
    with tempfile.TemporaryDirectory(prefix='geopile-index-') as folder:
        local = os.path.join(folder, 'index.json')
        provider.download_file(url, local)
        _add_to_index_file(Path(local), metadata)
        provider.upload_file(local, url)


def _add_to_index_file(path: Path, metadata: dict[str, Any]) -> None:
    index = json.loads(path.read_text())
    index[INDEX_KEY] = metadata
    path.write_text(json.dumps(index, sort_keys=True))


def index_metadata(folder: str | None) -> dict[str, Any]:
    """What :func:`add_to_index` recorded in a local (or cached) index.json.

    Args:
        folder: the folder holding index.json (litdata's cache for a URL); None: none.

    Returns:
        The recorded metadata; empty for shards written without any (RGB images).
    """
    if folder is None or not os.path.isfile(path := os.path.join(folder, 'index.json')):
        return {}
    metadata = json.loads(Path(path).read_text()).get(INDEX_KEY, {})
    return metadata if isinstance(metadata, dict) else {}
