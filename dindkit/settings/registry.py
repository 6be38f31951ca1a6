"""Settings of the local registry deploy (deploys/registry.py). Owned by the registry capability."""

from __future__ import annotations

import ipaddress
import posixpath
import re
from typing import Any
from urllib.parse import urlsplit

from dindkit.settings import (
    Setting,
    SettingError,
    SettingsTable,
    account_name,
    allows,
    boolean,
    integer,
    list_of,
)

# A DNS name as it may stand in a certificate's subjectAltName and in `docker login HOST:PORT`.
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*"
# Where the registry capability keeps its files on the host (dindkit.registry, its facts and
# operations, and the smoke modes that hand the CA and the credential to nested clients).
CONFIG_DIR = "/etc/dindkit/registry"
PRIVATE_DIR = f"{CONFIG_DIR}/private"  # root:docker-registry 0750
CA_DIR = f"{CONFIG_DIR}/ca"  # world-readable: the CA certificate clients are given
CA_CERT = f"{CA_DIR}/ca.crt"
CREDENTIALS_FILE = f"{PRIVATE_DIR}/credentials"  # username=..., password=...; root 0600
SERVICE_USER = "docker-registry"  # created by Debian's package
# The registry runs as the unprivileged user docker-registry: it cannot bind below 1024.
_PORTS = (1024, 65535)


def address(value: Any) -> str:
    """A host name or an IPv4 address, nothing else: no scheme, no port, no path."""
    allowed = (
        "allowed: a host name or an IPv4 address, without a scheme, port or path "
        "(e.g. 172.17.0.1 or ci.example.org)"
    )
    if not isinstance(value, str) or not value:
        raise SettingError(allowed)
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        pass
    if not re.fullmatch(_DNS_NAME, value) or value.replace(".", "").isdigit():
        raise SettingError(allowed)
    return value.lower()


def directory(value: Any) -> str:
    """An absolute, normalised folder path other than / itself."""
    allowed = "allowed: an absolute folder path other than / (letters, digits, . _ - and /)"
    if not isinstance(value, str) or not re.fullmatch(r"/[A-Za-z0-9._/-]*", value):
        raise SettingError(allowed)
    normalised = posixpath.normpath(value)
    if normalised in ("/", "//") or ".." in value.split("/"):
        raise SettingError(allowed + ", without ..")
    return normalised


def upstream_url(value: Any) -> str:
    """The mirror's upstream: https://HOST[:PORT], no path, no credentials."""
    allowed = "allowed: https://HOST or https://HOST:PORT (no path, no user:password@)"
    if not isinstance(value, str):
        raise SettingError(allowed)
    try:
        parts = urlsplit(value.rstrip("/"))
        port = parts.port
    except ValueError:
        raise SettingError(allowed) from None
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise SettingError(allowed)
    address(parts.hostname)
    return f"https://{parts.hostname}" + (f":{port}" if port else "")


def _consistent(values: dict[str, Any]) -> None:
    if not values["registry_mirror_enabled"]:
        return
    if not values["registry_enabled"]:
        raise SettingError(
            "registry_mirror_enabled=true needs registry_enabled=true (the mirror uses the "
            "registry's package, certificate and CA)"
        )
    port = values["registry_port"]
    if port == values["registry_mirror_port"]:
        raise SettingError(
            f"registry_port and registry_mirror_port are both {port}: the registry listens on "
            "every address, so the mirror needs a port of its own"
        )
    readonly = values["registry_readonly_port"]
    if readonly in (port, values["registry_mirror_port"]):
        raise SettingError(
            f"registry_readonly_port={readonly} is also the registry's or the mirror's port; "
            "allowed: a port of its own (1024-65535)"
        )
    data, mirror = values["registry_data_dir"], values["registry_mirror_data_dir"]
    if data == mirror or mirror.startswith(data + "/") or data.startswith(mirror + "/"):
        raise SettingError(
            f"registry_data_dir={data} and registry_mirror_data_dir={mirror} overlap: the "
            "mirror's garbage collection would delete the registry's blobs; give each its own "
            "folder"
        )
    upstream = urlsplit(values["registry_mirror_upstream"])
    if (
        upstream.hostname == values["registry_mirror_address"]
        and (upstream.port or 443) == values["registry_mirror_port"]
    ):
        raise SettingError(
            f"registry_mirror_upstream={values['registry_mirror_upstream']} is the mirror "
            "itself; allowed: another registry (this host's own is "
            f"https://127.0.0.1:{port})"
        )


allows(address, "a host name or an IPv4 address, without a scheme, port or path")
allows(directory, "an absolute folder path other than / (letters, digits, `._-/`, no ..)")
allows(upstream_url, "https://HOST or https://HOST:PORT (no path, no user:password@)")


REGISTRY_SETTINGS = SettingsTable(
    capability="registry",
    settings=(
        Setting(
            "registry_enabled",
            False,
            "Run a local registry (Debian's docker-registry) with TLS from a CA generated on "
            "the host and htpasswd auth.",
            boolean,
        ),
        Setting(
            "registry_port",
            5000,
            "Port the registry listens on, on every address (1024-65535: it runs as the "
            "unprivileged user docker-registry).",
            integer(*_PORTS),
        ),
        Setting(
            "registry_data_dir",
            "/var/lib/docker-registry",
            "Where the registry keeps its blobs and manifests (survives reboots).",
            directory,
        ),
        Setting(
            "registry_addresses",
            ["127.0.0.1", "172.17.0.1"],
            "Addresses clients reach the registry at, without port: the server certificate's "
            "names and one /etc/docker/certs.d entry each; the host's name is added.",
            list_of(address),
        ),
        Setting(
            "registry_username",
            "dindkit",
            "The htpasswd user; its generated password is kept root-only in "
            "/etc/dindkit/registry/private/credentials.",
            account_name,
        ),
        Setting(
            "registry_wait_seconds",
            60,
            "How long to wait for a (re)started registry or mirror to answer.",
            integer(5, 600),
        ),
        Setting(
            "registry_mirror_enabled",
            False,
            "Also run a pull-through cache (the registry in proxy mode), without auth, on "
            "registry_mirror_address only.",
            boolean,
        ),
        Setting(
            "registry_mirror_address",
            "172.17.0.1",
            "The one address the mirror listens on: the docker bridge's gateway reaches the "
            "host and its containers, not the network.",
            address,
        ),
        Setting(
            "registry_mirror_port",
            5001,
            "Port of the mirror (1024-65535).",
            integer(*_PORTS),
        ),
        Setting(
            "registry_mirror_data_dir",
            "/var/lib/docker-registry-mirror",
            "Where the mirror caches what it pulled.",
            directory,
        ),
        Setting(
            "registry_mirror_upstream",
            "https://registry-1.docker.io",
            "The registry the mirror pulls through from. When it is this host's own registry "
            "(https://127.0.0.1:PORT, or one of its addresses), the mirror pulls from a "
            "read-only instance on 127.0.0.1:registry_readonly_port instead.",
            upstream_url,
        ),
        Setting(
            "registry_readonly_port",
            5002,
            "Port, on 127.0.0.1 only, of the read-only instance without auth over "
            "registry_data_dir that the mirror pulls from when its upstream is this host's "
            "registry (docker-registry 2.8's proxy sends no credential to an htpasswd "
            "registry). Local users can read the registry's images through it.",
            integer(*_PORTS),
        ),
    ),
    cross_checks=(_consistent,),
)
