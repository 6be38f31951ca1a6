"""pyinfra operations for the local registry (dindkit.registry).

- ``secrets``: the CA, server certificate, htpasswd credential and CA trust, generated on the
  host only where missing or invalid (templates/registry/secrets.sh.j2).
- ``restart``: restart registry units, then wait until each answers on its TLS port.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import NamedTuple

from pyinfra import host
from pyinfra.api import StringCommand, operation

from dindkit.facts.registry import SECRET_PARTS, RegistrySecrets, secrets_script
from dindkit.settings.registry import CA_CERT
from dindkit.templating import render

WAIT_TEMPLATE = "registry/wait.sh.j2"


@operation()
def secrets(
    addresses: Sequence[str],
    username: str,
    trust_files: Sequence[str],
):
    """
    Generate what the registry's TLS and auth need, on the host, only where it is not valid.

    + addresses: the server certificate's names (IPv4 addresses and DNS names)
    + username: the htpasswd user; its password is generated once and kept root-only
    + trust_files: copies of the CA certificate (/etc/docker/certs.d/HOST:PORT/ca.crt)

    A CA that exists, matches its key and is valid for 30 more days is kept; so is the
    credential. The server certificate is renewed when its names, its CA or its validity no
    longer fit. Decided from one fact (``RegistrySecrets``).

    **Example:**

    .. code:: python

        secrets(
            name="Generate the registry's CA, certificate and credential",
            addresses=["127.0.0.1", "172.17.0.1", "ci1"],
            username="dindkit",
            trust_files=["/etc/docker/certs.d/127.0.0.1:5000/ca.crt"],
        )
    """
    addresses, trust_files = list(addresses), list(trust_files)
    states = host.get_fact(
        RegistrySecrets,
        addresses=addresses,
        username=username,
        trust_files=trust_files,
    )
    not_ok = [part for part in SECRET_PARTS if states.get(part) != "ok"]
    if not not_ok:
        host.noop("the registry's CA, certificate, credential and CA trust are in place")
        return
    yield StringCommand(secrets_script(addresses, username, trust_files, "apply"))


class Endpoint(NamedTuple):
    unit: str  # the systemd unit that serves it
    url: str  # https://ADDRESS:PORT/v2/


def wait_script(endpoints: Sequence[Endpoint], wait_seconds: int) -> str:
    return render(
        WAIT_TEMPLATE,
        wait_seconds=int(wait_seconds),
        ca_cert=shlex.quote(CA_CERT),
        endpoints=[{"unit": shlex.quote(unit), "url": shlex.quote(url)} for unit, url in endpoints],
    )


@operation(is_idempotent=False)
def restart(endpoints: Sequence[Endpoint], wait_seconds: int = 60):
    """
    Restart the units behind ``endpoints``, then wait until each answers ``/v2/`` over TLS.

    + endpoints: ``Endpoint(unit, url)`` pairs
    + wait_seconds: how long all of them together may take to answer

    Use with ``_if=`` on the operations that changed their configuration.

    **Example:**

    .. code:: python

        restart(
            name="Restart the registry",
            endpoints=[Endpoint("docker-registry.service", "https://127.0.0.1:5000/v2/")],
            _if=config.did_change,
        )
    """
    units = " ".join(shlex.quote(unit) for unit, _ in endpoints)
    yield f"systemctl restart {units}"
    yield StringCommand(wait_script(endpoints, wait_seconds))
