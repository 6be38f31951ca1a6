"""Facts about the local registry (dindkit.operations.registry decides from them).

- ``RegistrySecrets``: the state of the registry's CA, server certificate, htpasswd credential,
  the CA's copies in /etc/docker/certs.d and the absence of an older dindkit's copy of the
  credential for the mirror, in one round trip
  (the check half of templates/registry/secrets.sh.j2).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from pyinfra.api import FactBase

from dindkit.settings.registry import CA_CERT, CONFIG_DIR, PRIVATE_DIR, SERVICE_USER
from dindkit.templating import render

SECRETS_TEMPLATE = "registry/secrets.sh.j2"
SECRETS_MARK = "@@dindkit registry"
SECRET_PARTS = ("folders", "ca", "server", "credential", "mirror-env", "trust")


def san_names(addresses: Sequence[str]) -> str:
    """The names as ``openssl x509 -ext subjectAltName`` prints them: sorted, comma-joined."""
    return ",".join(sorted(_san(name, printed=True) for name in addresses))


def _san(name: str, printed: bool) -> str:
    is_ip = name.replace(".", "").isdigit()
    if printed:
        return f"IP Address:{name}" if is_ip else f"DNS:{name}"
    return f"IP:{name}" if is_ip else f"DNS:{name}"


def secrets_script(
    addresses: Sequence[str],
    username: str,
    trust_files: Sequence[str],
    action: str,
) -> str:
    """The script that checks (``check``) or creates (``apply``) the registry's secrets."""
    return render(
        SECRETS_TEMPLATE,
        action=action,
        marker=SECRETS_MARK,
        config_dir=shlex.quote(CONFIG_DIR),
        private_dir=shlex.quote(PRIVATE_DIR),
        ca_cert=shlex.quote(CA_CERT),
        service_user=shlex.quote(SERVICE_USER),
        username=shlex.quote(username),
        san_names=shlex.quote(san_names(addresses)),
        san_config=shlex.quote(",".join(_san(name, printed=False) for name in addresses)),
        trust_files=shlex.quote(" ".join(trust_files)),
    )


class RegistrySecrets(FactBase[dict[str, str]]):
    """
    Each part of the registry's secrets and trust: ``ok``, ``missing`` or ``invalid``.

    + addresses: the server certificate's names (IPv4 addresses and DNS names)
    + username: the htpasswd user
    + trust_files: where the CA certificate must be copied (/etc/docker/certs.d/HOST:PORT/ca.crt)

    .. code:: python

        {"folders": "ok", "ca": "ok", "server": "invalid", "credential": "ok",
         "mirror-env": "ok", "trust": "missing"}
    """

    default = dict

    def command(
        self,
        addresses: Sequence[str],
        username: str,
        trust_files: Sequence[str],
    ) -> str:
        return secrets_script(addresses, username, trust_files, "check")

    def process(self, output: list[str]) -> dict[str, str]:
        states: dict[str, str] = {}
        for line in output:
            if line.startswith(SECRETS_MARK + " "):
                part, _, state = line.removeprefix(SECRETS_MARK + " ").partition(" ")
                states[part] = state.strip()
        return states
