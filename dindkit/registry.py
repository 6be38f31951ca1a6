"""A local registry with TLS and htpasswd auth, and optionally a pull-through mirror.

``local_registry()`` is the deploy (``deploys/registry.py``); it does nothing unless
``registry_enabled``. Debian's docker-registry package runs as its own systemd service with
dindkit's configuration (a drop-in on the package's unit), its CA and credential are generated
on the host (``dindkit.operations.registry.secrets``), and the host's dockerd trusts the CA
through /etc/docker/certs.d. The mirror is a second instance in proxy mode with its own unit;
when its upstream is this host's registry, it pulls from a third, read-only instance without
auth on 127.0.0.1 (docker-registry 2.8's proxy sends no credential to an htpasswd registry).
Settings: ``dindkit.settings.registry``; docs/registry.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pyinfra import host
from pyinfra.api import DeployError, deploy
from pyinfra.facts.server import Hostname
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from dindkit.facts.reuse import read_once
from dindkit.operations import apt as apt_ops
from dindkit.operations import files as file_ops
from dindkit.operations import registry as registry_ops
from dindkit.operations import units as units_ops
from dindkit.settings import SettingError
from dindkit.settings.apt import APT_SETTINGS
from dindkit.settings.registry import (
    CA_CERT,
    CA_DIR,
    CONFIG_DIR,
    CREDENTIALS_FILE,
    PRIVATE_DIR,
    REGISTRY_SETTINGS,
    SERVICE_USER,
    address,
)
from dindkit.templating import render

PACKAGES = ("docker-registry", "apache2-utils", "openssl", "curl")
REGISTRY_UNIT = "docker-registry.service"
MIRROR_UNIT = "dindkit-registry-mirror.service"
READONLY_UNIT = "dindkit-registry-readonly.service"
REGISTRY_CONFIG = f"{CONFIG_DIR}/config.yml"
MIRROR_CONFIG = f"{CONFIG_DIR}/mirror.yml"
DROP_IN = f"/etc/systemd/system/{REGISTRY_UNIT}.d/10-dindkit.conf"
MIRROR_UNIT_FILE = f"/etc/systemd/system/{MIRROR_UNIT}"
READONLY_CONFIG = f"{CONFIG_DIR}/readonly.yml"
READONLY_UNIT_FILE = f"/etc/systemd/system/{READONLY_UNIT}"
SERVER_CERT = f"{PRIVATE_DIR}/server.crt"
SERVER_KEY = f"{PRIVATE_DIR}/server.key"
HTPASSWD = f"{PRIVATE_DIR}/htpasswd"
DOCKER_CERTS_DIR = "/etc/docker/certs.d"
LOCAL_NAMES = ("127.0.0.1", "localhost")
# apt's lists younger than this are not refreshed again for the registry's packages (the
# Docker deploy just before refreshed them).
APT_LISTS_MAX_AGE = 3600


@dataclass(frozen=True)
class RegistryAccess:
    """What a client needs to use the registry and the mirror; the smoke modes hand it in."""

    registry: str  # HOST:PORT for `docker login`, tags and pushes
    mirror: str | None  # https://HOST:PORT for a daemon's "registry-mirrors", None when off
    ca_cert: str  # the CA certificate on the host (world-readable)
    credentials_file: str  # username=, password= lines (root-only)


def access(values: dict[str, Any], registry_address: str = "172.17.0.1") -> RegistryAccess:
    """The registry as a nested client reaches it (by default through the bridge gateway)."""
    mirror = None
    if values["registry_mirror_enabled"]:
        mirror = f"https://{values['registry_mirror_address']}:{values['registry_mirror_port']}"
    return RegistryAccess(
        registry=f"{registry_address}:{values['registry_port']}",
        mirror=mirror,
        ca_cert=CA_CERT,
        credentials_file=CREDENTIALS_FILE,
    )


def certificate_names(values: dict[str, Any], hostname: str) -> list[str]:
    """The server certificate's names: registry_addresses, the mirror's address, the host."""
    try:
        own_name = address(hostname)
    except SettingError:
        raise DeployError(
            f"the host's name {hostname!r} cannot stand in a certificate; give the host a DNS "
            "name or leave it out by setting registry_addresses to IPv4 addresses you reach it at"
        ) from None
    names = list(values["registry_addresses"])
    if values["registry_mirror_enabled"]:
        names.append(values["registry_mirror_address"])
    names.append(own_name)
    return sorted(set(names))


def trust_files(values: dict[str, Any], names: list[str]) -> list[str]:
    """/etc/docker/certs.d/HOST:PORT/ca.crt for every name dockerd may use, mirror included."""
    endpoints = [f"{name}:{values['registry_port']}" for name in names]
    if values["registry_mirror_enabled"]:
        endpoints.append(f"{values['registry_mirror_address']}:{values['registry_mirror_port']}")
    return [f"{DOCKER_CERTS_DIR}/{endpoint}/ca.crt" for endpoint in sorted(set(endpoints))]


def upstream_is_local(values: dict[str, Any], names: list[str]) -> bool:
    """The mirror's upstream is this host's own registry (then the read-only instance is)."""
    upstream = urlsplit(values["registry_mirror_upstream"])
    return (upstream.hostname in (*names, *LOCAL_NAMES)) and (
        upstream.port == values["registry_port"]
    )


def _instance_config(
    role: str,
    service: str,
    data_dir: str,
    listen: str,
    *,
    tls: bool = True,
    auth: bool = False,
    upstream: str | None = None,
    readonly: bool = False,
) -> str:
    """One docker-registry instance's config.yml (templates/registry/config.yml.j2)."""
    return render(
        "registry/config.yml.j2",
        role=role,
        service=service,
        data_dir=data_dir,
        listen=listen,
        certificate=SERVER_CERT if tls else None,
        key=SERVER_KEY if tls else None,
        htpasswd=HTPASSWD if auth else None,
        upstream=upstream,
        readonly=readonly,
    )


def registry_config(values: dict[str, Any]) -> str:
    return _instance_config(
        "the local registry",
        "docker-registry",
        values["registry_data_dir"],
        f":{values['registry_port']}",
        auth=True,
    )


def readonly_listen(values: dict[str, Any]) -> str:
    """Where the read-only instance listens: the host's loopback only."""
    return f"127.0.0.1:{values['registry_readonly_port']}"


def readonly_url(values: dict[str, Any]) -> str:
    return f"http://{readonly_listen(values)}"


def readonly_config(values: dict[str, Any]) -> str:
    """The registry's data, read-only, without auth or TLS, on the host's loopback only."""
    return _instance_config(
        "a read-only view of the local registry, the mirror's upstream",
        "dindkit-registry-readonly",
        values["registry_data_dir"],
        readonly_listen(values),
        tls=False,
        readonly=True,
    )


def mirror_config(values: dict[str, Any], local_upstream: bool) -> str:
    return _instance_config(
        "the registry mirror, a pull-through cache",
        "dindkit-registry-mirror",
        values["registry_mirror_data_dir"],
        f"{values['registry_mirror_address']}:{values['registry_mirror_port']}",
        upstream=readonly_url(values) if local_upstream else values["registry_mirror_upstream"],
    )


def drop_in() -> str:
    return render("registry/docker-registry.service.d/10-dindkit.conf.j2", config=REGISTRY_CONFIG)


def mirror_unit(values: dict[str, Any]) -> str:
    return render(
        "registry/dindkit-registry-mirror.service.j2",
        address=values["registry_mirror_address"],
        ca_dir=CA_DIR,
        config=MIRROR_CONFIG,
    )


def readonly_unit(values: dict[str, Any]) -> str:
    return render(
        "registry/dindkit-registry-readonly.service.j2",
        listen=readonly_listen(values),
        config=READONLY_CONFIG,
    )


def _data_dir(path: str, what: str) -> Any:
    return files.directory(
        name=f"Create the {what}'s data folder {path}",
        path=path,
        user=SERVICE_USER,
        group=SERVICE_USER,
        mode="750",
    )


@deploy("Run a local registry", data_defaults=REGISTRY_SETTINGS.defaults)
def local_registry() -> None:
    """
    Run Debian's docker-registry with TLS (a CA generated on the host) and htpasswd auth, and
    optionally a pull-through mirror. Nothing happens unless ``registry_enabled``; turning it
    off again leaves what was installed.

    Settings (``dindkit.settings.registry``) are validated before any fact is read.
    """
    values = REGISTRY_SETTINGS.validate(host.data)
    APT_SETTINGS.validate(host.data)  # read by every apt step (dindkit.operations.apt)
    if not values["registry_enabled"]:
        return
    names = certificate_names(values, read_once(Hostname))
    mirror_on = values["registry_mirror_enabled"]
    readonly_on = mirror_on and upstream_is_local(values, names)

    # Configuration first: the package's postinst starts the service with it.
    config = file_ops.config_file(
        name=f"Write the registry's configuration {REGISTRY_CONFIG}",
        dest=REGISTRY_CONFIG,
        content=registry_config(values),
    )
    unit_changes = [
        file_ops.config_file(
            name="Point docker-registry.service at dindkit's configuration (a drop-in)",
            dest=DROP_IN,
            content=drop_in(),
        )
    ]
    mirror_config_op = None
    if mirror_on:
        mirror_config_op = file_ops.config_file(
            name=f"Write the mirror's configuration {MIRROR_CONFIG}",
            dest=MIRROR_CONFIG,
            content=mirror_config(values, readonly_on),
        )
        unit_changes.append(
            file_ops.config_file(
                name=f"Install the mirror's unit {MIRROR_UNIT}",
                dest=MIRROR_UNIT_FILE,
                content=mirror_unit(values),
            )
        )
    readonly_ops = None
    if readonly_on:
        readonly_ops = (
            file_ops.config_file(
                name=f"Write the read-only instance's configuration {READONLY_CONFIG}",
                dest=READONLY_CONFIG,
                content=readonly_config(values),
            ),
            file_ops.config_file(
                name=f"Install the read-only instance's unit {READONLY_UNIT}",
                dest=READONLY_UNIT_FILE,
                content=readonly_unit(values),
            ),
        )
        unit_changes.append(readonly_ops[1])
    systemd.daemon_reload(
        name="Reload systemd units after the registry's units changed",
        _if=any_changed(*unit_changes),
    )
    installed = apt_ops.packages(
        name="Install docker-registry, htpasswd (apache2-utils), openssl and curl",
        packages=list(PACKAGES),
        cache_time=APT_LISTS_MAX_AGE,
        no_recommends=True,
    )
    data = _data_dir(values["registry_data_dir"], "registry")
    secrets = registry_ops.secrets(
        name="Generate the registry's CA, server certificate and credential where missing",
        addresses=names,
        username=values["registry_username"],
        trust_files=trust_files(values, names),
    )
    registry_endpoint = registry_ops.Endpoint(
        REGISTRY_UNIT, f"https://127.0.0.1:{values['registry_port']}/v2/"
    )
    registry_ops.restart(
        name="Restart the registry for its new configuration",
        endpoints=[registry_endpoint],
        wait_seconds=values["registry_wait_seconds"],
        _if=any_changed(config, unit_changes[0], installed, data, secrets),
    )
    units = [REGISTRY_UNIT]
    if readonly_ops is not None:  # before the mirror, which pulls from it
        registry_ops.restart(
            name="Restart the read-only instance for its new configuration",
            endpoints=[registry_ops.Endpoint(READONLY_UNIT, f"{readonly_url(values)}/v2/")],
            wait_seconds=values["registry_wait_seconds"],
            _if=any_changed(*readonly_ops, installed, data),
        )
        units.append(READONLY_UNIT)
    if mirror_on and mirror_config_op is not None:
        mirror_data = _data_dir(values["registry_mirror_data_dir"], "mirror")
        mirror_endpoint = registry_ops.Endpoint(
            MIRROR_UNIT,
            f"https://{values['registry_mirror_address']}:{values['registry_mirror_port']}/v2/",
        )
        registry_ops.restart(
            name="Restart the mirror for its new configuration",
            endpoints=[mirror_endpoint],
            wait_seconds=values["registry_wait_seconds"],
            _if=any_changed(mirror_config_op, unit_changes[1], installed, mirror_data, secrets),
        )
        units.append(MIRROR_UNIT)
    units_ops.running_and_enabled(name="Enable and start the registry", units=units)
