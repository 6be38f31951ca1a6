"""dindkit's cache folder and how entries get built into it, for every capability that caches.

The cache folder is ``$DINDKIT_CACHE`` or ``~/.cache/dindkit``: lab images and labs
(``dindkit.lab``), smoke, podman and client image archives (``dindkit.images``), Vagrant boxes.
``file_lock`` serialises builds across processes and pyinfra's greenlets; ``build_cached``
builds an entry named after its recipe once, atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

LOCK_POLL_SECONDS = 0.5  # how often a lock's waiter tries again


def cache_dir() -> Path:
    configured = os.environ.get("DINDKIT_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "dindkit"


@contextlib.contextmanager
def file_lock(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """An exclusive flock on ``path``; ``on_wait`` is called once if someone else holds it.

    The wait is short sleeps, never a blocking flock: pyinfra plans its hosts as gevent
    greenlets in one process, and a blocking flock would stop that whole process, the greenlet
    holding the lock included, while another host's greenlet waits for it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        waited = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if on_wait and not waited:
                    on_wait()
                waited = True
                time.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_cached(
    directory: Path,
    recipe: Mapping[str, object],
    build: Callable[[Path], None],
    *,
    ready: Callable[[], bool],
    what: str,
    progress: Callable[[str], None],
    force: bool = False,
) -> bool:
    """Build the cache entry ``directory`` (named after its recipe) unless ``ready()``.

    One build at a time (an exclusive lock beside it); ``build(work)`` fills a temporary folder
    that holds ``recipe.json`` and is renamed into place only when complete, so a killed build
    leaves a temporary folder that the next build removes, never a half-built entry. Returns
    whether it built.
    """
    if ready() and not force:
        progress(f"Reusing the cached {what} {directory}")
        return False
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    lock = parent / f"{directory.name}.lock"
    with file_lock(lock, on_wait=lambda: progress(f"Waiting for another build of the {what}")):
        if ready() and not force:
            progress(f"Reusing the cached {what} {directory} (built meanwhile)")
            return False
        started = time.monotonic()
        prefix = f".build-{directory.name}-"
        for stale in parent.glob(prefix + "*"):  # left by a killed build (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        try:
            (work / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
            build(work)
            if directory.exists():
                shutil.rmtree(directory)
            work.rename(directory)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        progress(f"Built the {what} in {time.monotonic() - started:.0f}s: {directory}")
    return True
