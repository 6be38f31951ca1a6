"""Facts about files that pyinfra's own need several round trips for.

- ``FileDigest``: a file's owner, group, mode and SHA-1 in one round trip (None if absent).
"""

from __future__ import annotations

import shlex
from typing import TypedDict

from pyinfra.api import FactBase


class FileDigestDict(TypedDict):
    user: str
    group: str
    mode: str  # octal, as stat prints it: "644"
    sha1: str


class FileDigest(FactBase[FileDigestDict | None]):
    """
    Owner, group, octal mode and SHA-1 of a regular file, or ``None`` when it does not exist:
    what deciding about a small config file needs, in one command (pyinfra's ``files.put``
    reads three facts for it).

    .. code:: python

        {"user": "root", "group": "root", "mode": "644", "sha1": "da39a3ee..."}
    """

    def command(self, path: str) -> str:
        quoted = shlex.quote(path)
        return f"! test -f {quoted} || {{ stat -c '%U %G %a' {quoted} && sha1sum {quoted}; }}"

    def process(self, output: list[str]) -> FileDigestDict | None:
        if len(output) < 2:
            return None
        user, group, mode = output[0].split()
        return {"user": user, "group": group, "mode": mode, "sha1": output[1].split()[0]}
