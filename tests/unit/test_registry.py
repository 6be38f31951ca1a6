"""The local registry: settings refused before any host is touched, what the deploy renders
(config.yml parsed as YAML, units), the names and trust files it derives, the secrets script run
for real with openssl in a sandbox, and the CI flow script."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyinfra.api.exceptions import DeployError

from dindkit import ci_flow, registry
from dindkit.facts.registry import SECRETS_MARK, RegistrySecrets, _san, san_names
from dindkit.settings.registry import REGISTRY_SETTINGS
from dindkit.templating import render
from tests import shellcheck
from tests.pyinfra_dry import assert_refused_before_any_operation, dry_run

ON = {"registry_enabled": True}
MIRROR = {**ON, "registry_mirror_enabled": True}

BAD: list[tuple[dict[str, Any], str]] = [
    ({"registry_enabled": "sometimes"}, "registry_enabled='sometimes': allowed: true or false"),
    ({"registry_enabled": 2}, "registry_enabled=2: allowed: true or false"),
    ({"registry_enabled": "enabled"}, "registry_enabled='enabled'"),
    ({"registry_enabled": ["true"]}, "registry_enabled=['true']"),
    ({"registry_port": 443}, "registry_port=443: allowed: a whole number from 1024 to 65535"),
    ({"registry_port": 70000}, "registry_port=70000: allowed: a whole number from 1024"),
    ({"registry_port": "5000/tcp"}, "registry_port='5000/tcp'"),
    ({"registry_port": True}, "registry_port=True"),
    ({"registry_port": -1}, "registry_port=-1"),
    ({"registry_data_dir": "/"}, "registry_data_dir='/': allowed: an absolute folder path other"),
    ({"registry_data_dir": "var/lib/registry"}, "registry_data_dir='var/lib/registry'"),
    ({"registry_data_dir": "/var/lib/../.."}, "without .."),
    ({"registry_data_dir": "/var/lib/my registry"}, "registry_data_dir='/var/lib/my registry'"),
    ({"registry_data_dir": "//"}, "registry_data_dir='//'"),
    ({"registry_data_dir": 5}, "registry_data_dir=5"),
    ({"registry_addresses": ["https://ci.example.org"]}, "without a scheme, port or path"),
    ({"registry_addresses": ["ci.example.org/v2"]}, "registry_addresses=['ci.example.org/v2']"),
    ({"registry_addresses": "172.17.0.1:5000"}, "registry_addresses='172.17.0.1:5000'"),
    ({"registry_addresses": ["::1"]}, "a host name or an IPv4 address"),
    ({"registry_addresses": ["under_score"]}, "registry_addresses=['under_score']"),
    ({"registry_addresses": ["1.2.3"]}, "registry_addresses=['1.2.3']"),
    ({"registry_username": "CI User"}, "registry_username='CI User'"),
    ({"registry_username": "ci:admin"}, "registry_username='ci:admin'"),
    ({"registry_username": 7}, "registry_username=7"),
    ({"registry_username": "-ci"}, "registry_username='-ci'"),
    (
        {"registry_wait_seconds": 1},
        "registry_wait_seconds=1: allowed: a whole number from 5 to 600",
    ),
    ({"registry_wait_seconds": 601}, "registry_wait_seconds=601"),
    ({"registry_wait_seconds": "soon"}, "registry_wait_seconds='soon'"),
    ({"registry_wait_seconds": 1.5}, "registry_wait_seconds=1.5"),
    ({"registry_mirror_enabled": "maybe"}, "registry_mirror_enabled='maybe'"),
    ({"registry_mirror_enabled": 3}, "registry_mirror_enabled=3"),
    ({"registry_mirror_enabled": {}}, "registry_mirror_enabled={}"),
    (
        {"registry_mirror_enabled": True},
        "Invalid settings for registry: registry_mirror_enabled=true needs registry_enabled=true",
    ),
    ({"registry_mirror_address": "0.0.0.0:5001"}, "registry_mirror_address='0.0.0.0:5001'"),
    ({"registry_mirror_address": "http://172.17.0.1"}, "without a scheme, port or path"),
    ({"registry_mirror_address": ""}, "registry_mirror_address=''"),
    ({"registry_mirror_address": "fe80::1"}, "registry_mirror_address='fe80::1'"),
    ({"registry_mirror_port": 80}, "registry_mirror_port=80: allowed: a whole number from 1024"),
    ({"registry_mirror_port": "fast"}, "registry_mirror_port='fast'"),
    ({"registry_mirror_port": 65536}, "registry_mirror_port=65536"),
    (
        {**MIRROR, "registry_mirror_port": 5000},
        "registry_port and registry_mirror_port are both 5000",
    ),
    ({"registry_mirror_data_dir": "/"}, "registry_mirror_data_dir='/'"),
    ({"registry_mirror_data_dir": "cache"}, "registry_mirror_data_dir='cache'"),
    ({"registry_mirror_data_dir": "/srv/a/../../.."}, "without .."),
    (
        {**MIRROR, "registry_mirror_data_dir": "/var/lib/docker-registry/mirror"},
        "registry_data_dir=/var/lib/docker-registry and registry_mirror_data_dir="
        "/var/lib/docker-registry/mirror overlap",
    ),
    (
        {**MIRROR, "registry_mirror_data_dir": "/var/lib/docker-registry/"},
        "overlap",
    ),
    ({"registry_mirror_upstream": "registry-1.docker.io"}, "allowed: https://HOST or"),
    ({"registry_mirror_upstream": "http://127.0.0.1:5000"}, "registry_mirror_upstream="),
    ({"registry_mirror_upstream": "https://127.0.0.1:5000/v2"}, "(no path, no user:password@)"),
    ({"registry_mirror_upstream": "https://ci:secret@127.0.0.1:5000"}, "no user:password@"),
    ({"registry_mirror_upstream": "https://127.0.0.1:port"}, "registry_mirror_upstream="),
    (
        {**MIRROR, "registry_mirror_upstream": "https://172.17.0.1:5001"},
        "registry_mirror_upstream=https://172.17.0.1:5001 is the mirror itself",
    ),
    ({"registry_readonly_port": 22}, "registry_readonly_port=22: allowed: a whole number"),
    ({"registry_readonly_port": "5002/tcp"}, "registry_readonly_port='5002/tcp'"),
    (
        {**MIRROR, "registry_readonly_port": 5000},
        "registry_readonly_port=5000 is also the registry's or the mirror's port",
    ),
    (
        {**MIRROR, "registry_readonly_port": 5001},
        "registry_readonly_port=5001 is also the registry's or the mirror's port",
    ),
]


def test_every_setting_has_at_least_four_bad_cases() -> None:
    # A case's own setting is its last key (the ones before it switch the registry on).
    counts = {name: 0 for name in REGISTRY_SETTINGS.defaults}
    for data, _ in BAD:
        counts[list(data)[-1]] += 1
    assert {name: count for name, count in counts.items() if count < 4} == {}


@pytest.mark.parametrize(("data", "message"), BAD)
def test_bad_settings_are_refused_naming_the_setting(data: dict[str, Any], message: str) -> None:
    with pytest.raises(DeployError) as error:
        REGISTRY_SETTINGS.validate(data)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_defaults_are_off_and_valid() -> None:
    values = REGISTRY_SETTINGS.validate({})
    assert values["registry_enabled"] is False
    assert values["registry_mirror_enabled"] is False
    assert REGISTRY_SETTINGS.validate(MIRROR)["registry_mirror_port"] == 5001


def test_values_are_normalised() -> None:
    values = REGISTRY_SETTINGS.validate(
        {
            **MIRROR,
            "registry_port": "5050",
            "registry_data_dir": "/srv/registry/",
            "registry_addresses": "127.0.0.1, CI.example.org",
            "registry_mirror_upstream": "https://127.0.0.1:5050/",
        }
    )
    assert values["registry_port"] == 5050
    assert values["registry_data_dir"] == "/srv/registry"
    assert values["registry_addresses"] == ["127.0.0.1", "ci.example.org"]
    assert values["registry_mirror_upstream"] == "https://127.0.0.1:5050"


def _values(**data: Any) -> dict[str, Any]:
    return REGISTRY_SETTINGS.validate({**MIRROR, **data})


def test_registry_config_is_yaml_with_tls_auth_and_no_proxy() -> None:
    config = yaml.safe_load(registry.registry_config(_values(registry_port=5050)))
    assert config["version"] == 0.1
    assert config["http"]["addr"] == ":5050"
    assert config["http"]["tls"] == {
        "certificate": "/etc/dindkit/registry/private/server.crt",
        "key": "/etc/dindkit/registry/private/server.key",
    }
    assert config["auth"] == {
        "htpasswd": {"realm": "dindkit-registry", "path": "/etc/dindkit/registry/private/htpasswd"}
    }
    assert config["storage"]["filesystem"] == {"rootdirectory": "/var/lib/docker-registry"}
    assert config["storage"]["delete"] == {"enabled": True}
    assert "proxy" not in config


def test_mirror_config_is_yaml_with_proxy_tls_and_no_auth() -> None:
    values = _values(registry_mirror_upstream="https://registry.example.org")
    config = yaml.safe_load(registry.mirror_config(values, local_upstream=False))
    assert config["proxy"] == {"remoteurl": "https://registry.example.org"}
    assert config["http"]["addr"] == "172.17.0.1:5001"
    assert config["http"]["tls"]["key"] == "/etc/dindkit/registry/private/server.key"
    assert config["storage"]["filesystem"]["rootdirectory"] == "/var/lib/docker-registry-mirror"
    assert "auth" not in config


def test_a_local_upstream_is_reached_through_the_read_only_instance() -> None:
    """docker-registry 2.8's proxy sends no credential to an htpasswd registry: the mirror
    pulls from a read-only view of the registry's data on 127.0.0.1, without auth."""
    values = _values(registry_mirror_upstream="https://127.0.0.1:5000", registry_readonly_port=5055)
    mirror = yaml.safe_load(registry.mirror_config(values, local_upstream=True))
    assert mirror["proxy"] == {"remoteurl": "http://127.0.0.1:5055"}
    readonly = yaml.safe_load(registry.readonly_config(values))
    assert readonly["http"]["addr"] == "127.0.0.1:5055"
    assert "tls" not in readonly["http"] and "auth" not in readonly and "proxy" not in readonly
    assert readonly["storage"]["filesystem"] == {"rootdirectory": "/var/lib/docker-registry"}
    assert readonly["storage"]["maintenance"] == {"readonly": {"enabled": True}}
    assert "delete" not in readonly["storage"]
    unit = registry.readonly_unit(values)
    assert "User=docker-registry" in unit
    assert "ExecStart=/usr/bin/docker-registry serve /etc/dindkit/registry/readonly.yml" in unit
    assert "on 127.0.0.1:5055 only" in unit


def test_units_point_at_dindkits_configuration() -> None:
    drop_in = registry.drop_in()
    assert (
        "ExecStart=\nExecStart=/usr/bin/docker-registry serve /etc/dindkit/registry/config.yml"
        in (drop_in)
    )
    unit = registry.mirror_unit(_values())
    assert "User=docker-registry" in unit
    assert "EnvironmentFile" not in unit  # no credential: a local upstream is read-only
    assert "Environment=SSL_CERT_DIR=/etc/dindkit/registry/ca:/etc/ssl/certs" in unit
    assert "ExecStart=/usr/bin/docker-registry serve /etc/dindkit/registry/mirror.yml" in unit
    assert "After=network-online.target docker.service" in unit


def test_certificate_names_add_the_host_and_the_mirror() -> None:
    assert registry.certificate_names(_values(registry_mirror_address="10.0.0.5"), "ci1") == [
        "10.0.0.5",
        "127.0.0.1",
        "172.17.0.1",
        "ci1",
    ]
    with pytest.raises(DeployError, match="the host's name 'ci_1' cannot stand in a certificate"):
        registry.certificate_names(_values(), "ci_1")


def test_trust_files_cover_every_name_and_the_mirror() -> None:
    values = _values()
    names = registry.certificate_names(values, "ci1")
    assert registry.trust_files(values, names) == [
        "/etc/docker/certs.d/127.0.0.1:5000/ca.crt",
        "/etc/docker/certs.d/172.17.0.1:5000/ca.crt",
        "/etc/docker/certs.d/172.17.0.1:5001/ca.crt",
        "/etc/docker/certs.d/ci1:5000/ca.crt",
    ]


@pytest.mark.parametrize(
    ("upstream", "local"),
    [
        ("https://127.0.0.1:5000", True),
        ("https://ci1:5000", True),
        ("https://localhost:5000", True),
        ("https://127.0.0.1:5002", False),
        ("https://registry-1.docker.io", False),
    ],
)
def test_upstream_is_local(upstream: str, local: bool) -> None:
    values = _values(registry_mirror_upstream=upstream)
    assert registry.upstream_is_local(values, ["127.0.0.1", "ci1"]) is local


def test_access_for_nested_clients() -> None:
    assert registry.access(_values()) == registry.RegistryAccess(
        registry="172.17.0.1:5000",
        mirror="https://172.17.0.1:5001",
        ca_cert="/etc/dindkit/registry/ca/ca.crt",
        credentials_file="/etc/dindkit/registry/private/credentials",
    )
    assert registry.access(REGISTRY_SETTINGS.validate(ON)).mirror is None


def test_san_names_as_openssl_prints_them() -> None:
    assert san_names(["ci1", "172.17.0.1", "127.0.0.1"]) == (
        "DNS:ci1,IP Address:127.0.0.1,IP Address:172.17.0.1"
    )
    assert _san("172.17.0.1", printed=False) == "IP:172.17.0.1"


# The secrets script, run for real with openssl in a folder of its own. htpasswd is a fake that
# keeps the password in clear (the real `htpasswd -B` runs in the lab); root is needed for
# the owners the script sets.
FAKE_HTPASSWD = """#!/bin/sh
# htpasswd -c -B -C 10 -i FILE USER  |  htpasswd -v -i FILE USER
verify=no; create=no
while [ $# -gt 2 ]; do case $1 in -v) verify=yes;; -c) create=yes;; esac; shift; done
password=$(cat)
if [ $verify = yes ]; then grep -qx "$2:fake-$password" "$1"; exit; fi
[ $create = yes ] && echo "$2:fake-$password" >"$1"
"""


def _secrets_script(root: Path, addresses: list[str]) -> dict[str, Path]:
    return {action: _secrets_script_for(root, addresses, action) for action in ("check", "apply")}


def _secrets_script_for(root: Path, addresses: list[str], action: str) -> Path:
    script = root / f"secrets-{action}.sh"
    script.write_text(
        render(
            "registry/secrets.sh.j2",
            action=action,
            marker=SECRETS_MARK,
            config_dir=shlex.quote(str(root / "etc")),
            private_dir=shlex.quote(str(root / "etc/private")),
            ca_cert=shlex.quote(str(root / "etc/ca/ca.crt")),
            service_user="root",
            username="dindkit",
            san_names=shlex.quote(san_names(addresses)),
            san_config=shlex.quote(",".join(_san(name, printed=False) for name in addresses)),
            trust_files=shlex.quote(f"{root}/certs.d/127.0.0.1:5000/ca.crt"),
        )
    )
    return script


def _run(scripts: dict[str, Path], action: str, bin_dir: Path) -> tuple[dict[str, str], str]:
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["sh", str(scripts[action])], capture_output=True, text=True, env=env, check=True
    )
    return RegistrySecrets().process(result.stdout.splitlines()), result.stdout


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    if os.geteuid() != 0:
        pytest.skip("the secrets script sets root as owner: run as root")
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "htpasswd").write_text(FAKE_HTPASSWD)
    (bin_dir / "htpasswd").chmod(0o755)
    return tmp_path, bin_dir


ALL_OK = {part: "ok" for part in ("folders", "ca", "server", "credential", "mirror-env", "trust")}


def test_secrets_are_generated_once_and_kept(sandbox: tuple[Path, Path]) -> None:
    root, bin_dir = sandbox
    script = _secrets_script(root, ["127.0.0.1", "172.17.0.1", "ci1"])
    states, _ = _run(script, "check", bin_dir)
    assert states["ca"] == "missing" and states["trust"] == "missing"
    states, output = _run(script, "apply", bin_dir)
    assert states == ALL_OK, output
    etc = root / "etc"
    modes = {
        path.relative_to(etc).as_posix(): oct(path.stat().st_mode & 0o777)
        for path in etc.rglob("*")
    }
    assert modes == {
        "ca": "0o755",
        "ca/ca.crt": "0o644",
        "private": "0o750",
        "private/ca.key": "0o600",
        "private/server.key": "0o640",
        "private/server.crt": "0o644",
        "private/credentials": "0o600",
        "private/htpasswd": "0o640",
    }
    san = subprocess.run(
        [
            "openssl",
            "x509",
            "-in",
            str(etc / "private/server.crt"),
            "-noout",
            "-ext",
            "subjectAltName",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "IP Address:127.0.0.1, IP Address:172.17.0.1, DNS:ci1" in san
    assert (root / "certs.d/127.0.0.1:5000/ca.crt").read_bytes() == (etc / "ca/ca.crt").read_bytes()

    before = {path: path.read_bytes() for path in etc.rglob("*") if path.is_file()}
    # A second apply changes nothing; a loose mode and a lost htpasswd are repaired, but the CA
    # and the password stay.
    _run(script, "apply", bin_dir)
    (etc / "private/ca.key").chmod(0o644)
    (etc / "private/htpasswd").unlink()
    states, _ = _run(script, "check", bin_dir)
    assert states["ca"] == "invalid" and states["credential"] == "missing"
    states, output = _run(script, "apply", bin_dir)
    assert states == ALL_OK
    assert "generating" not in output
    after = {path: path.read_bytes() for path in etc.rglob("*") if path.is_file()}
    assert after == before


def test_new_names_renew_only_the_server_certificate(sandbox: tuple[Path, Path]) -> None:
    root, bin_dir = sandbox
    _run(_secrets_script(root, ["127.0.0.1", "ci1"]), "apply", bin_dir)
    ca = (root / "etc/ca/ca.crt").read_bytes()
    server = (root / "etc/private/server.crt").read_bytes()
    # An older dindkit's copy of the credential for the mirror goes.
    (root / "etc/private/mirror-upstream.env").write_text("REGISTRY_PROXY_PASSWORD=x\n")
    script = _secrets_script(root, ["127.0.0.1", "ci2"])
    states, _ = _run(script, "check", bin_dir)
    assert states["server"] == "invalid" and states["mirror-env"] == "invalid"
    assert states["ca"] == "ok"
    states, output = _run(script, "apply", bin_dir)
    assert states == ALL_OK
    assert "generating the registry's server certificate for DNS:ci2" in output
    assert (root / "etc/ca/ca.crt").read_bytes() == ca
    assert (root / "etc/private/server.crt").read_bytes() != server
    assert not (root / "etc/private/mirror-upstream.env").exists()


def test_a_broken_ca_key_means_a_new_ca_and_server_certificate(sandbox: tuple[Path, Path]) -> None:
    root, bin_dir = sandbox
    script = _secrets_script(root, ["127.0.0.1"])
    _run(script, "apply", bin_dir)
    ca = (root / "etc/ca/ca.crt").read_bytes()
    password = (root / "etc/private/credentials").read_text()
    (root / "etc/private/ca.key").write_text("not a key\n")
    states, output = _run(script, "apply", bin_dir)
    assert states == ALL_OK
    assert "generating the registry CA" in output
    assert (root / "etc/ca/ca.crt").read_bytes() != ca
    assert (root / "certs.d/127.0.0.1:5000/ca.crt").read_bytes() != ca
    assert (root / "etc/private/credentials").read_text() == password


@pytest.mark.parametrize(
    "script",
    [
        "secrets",
        "wait",
        "ci-flow",
    ],
)
def test_scripts_are_shellcheck_clean(script: str, tmp_path: Path) -> None:
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed")
    from dindkit.facts.registry import secrets_script
    from dindkit.operations.registry import Endpoint, wait_script

    text = {
        "secrets": lambda: secrets_script(["127.0.0.1", "ci1"], "dindkit", ["/a/ca.crt"], "apply"),
        "wait": lambda: wait_script([Endpoint("docker-registry.service", "https://x:5000/v2/")], 9),
        "ci-flow": lambda: ci_flow.script("172.17.0.1:5000", "dindkit-smoke:1"),
    }[script]()
    assert shellcheck.defects(text, "sh") == []


def test_ci_flow_steps_are_parsed() -> None:
    output = (
        "noise\n@@dindkit ci build passed 12 reg:5000/dindkit/ci-flow:run-1\n"
        "@@dindkit ci push failed 3 reg:5000/dindkit/ci-flow:run-1\n"
    )
    assert ci_flow.steps(output) == {
        "build": ("passed", "12 reg:5000/dindkit/ci-flow:run-1"),
        "push": ("failed", "3 reg:5000/dindkit/ci-flow:run-1"),
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["registry_mirror_enabled=true"], "registry_mirror_enabled=true needs registry_enabled"),
        (["registry_enabled=true", "registry_data_dir=/"], "Invalid setting registry_data_dir='/'"),
    ],
)
def test_pyinfra_refuses_bad_settings_before_touching_the_host(
    data: list[str], message: str, tmp_path: Path
) -> None:
    assert_refused_before_any_operation(dry_run("registry", *data, cwd=tmp_path), message)
