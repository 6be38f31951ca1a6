"""pyinfra operations on files, cheaper on a re-run than pyinfra's own.

- ``config_file``: a small root-owned file, decided from one fact on a re-run.
"""

from __future__ import annotations

import hashlib
from io import StringIO

from pyinfra import host
from pyinfra.api import operation
from pyinfra.operations import files

from dindkit.facts.files import FileDigest
from dindkit.facts.reuse import read_once


@operation()
def config_file(dest: str, content: str, mode: str = "644"):
    """
    Put a small configuration file, owned by root, when its content, owner or mode differ.

    + dest: the file on the target; its folder is created when missing
    + content: the wanted text (e.g. a rendered template)
    + mode: octal permission bits

    Same result as ``files.put(user="root", group="root")``, but a file already as wanted
    costs one fact (``FileDigest``) instead of three: this runs on every no-op re-run.

    **Example:**

    .. code:: python

        config_file(name="Write the drop-in", dest="/etc/x.conf", content="[Socket]\\n")
    """
    current = read_once(FileDigest, path=dest)  # a deploy that asked already pays nothing
    sha1 = hashlib.sha1(content.encode(), usedforsecurity=False).hexdigest()
    if current == {"user": "root", "group": "root", "mode": mode, "sha1": sha1}:
        host.noop(f"{dest} is up to date")
        return
    yield from files.put._inner(
        src=StringIO(content), dest=dest, user="root", group="root", mode=mode
    )
