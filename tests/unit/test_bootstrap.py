"""The bootstrap deploy: every table validated first, Sysbox's verdict handled, examples valid."""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path

import pytest
from pyinfra.api.exceptions import DeployError

from dindkit.bootstrap import DEFAULTS, TABLES, sysbox_decision, time_keeper, validate
from dindkit.settings.catalog import ALL_TABLES
from tests.checkout import project_file
from tests.pyinfra_dry import assert_refused_before_any_operation, dry_run


def test_validates_every_table() -> None:
    assert {t.capability for t in TABLES} == {t.capability for t in ALL_TABLES}
    # One setting in two tables would have one table's default silently win in DEFAULTS.
    names = [name for table in TABLES for name in table.defaults]
    assert sorted(names) == sorted(set(names)), "a setting defined in two tables"


def test_defaults_are_valid_normalised_values() -> None:
    """What the deploy falls back to (its data_defaults) is what validation gives for no data,
    and validating it again changes nothing: no default is refused or rewritten."""
    assert validate({}) == DEFAULTS
    assert validate(dict(DEFAULTS)) == DEFAULTS


def test_defaults_are_the_documented_ones() -> None:
    """docs/settings.md, read as a user reads it: every setting the bootstrap takes is listed
    there with the default the deploy really uses."""
    documented: dict[str, object] = {}
    for line in project_file("docs", "settings.md").read_text().splitlines():
        row = re.match(r"^\| `(?P<name>\w+)` \| (?P<default>unset|`.*?`) \| ", line)
        if row:
            default = row["default"]
            value = None if default == "unset" else json.loads(default[1:-1].replace("\\|", "|"))
            documented[row["name"]] = value
    missing = sorted(set(DEFAULTS) - set(documented))
    assert not missing, f"not in docs/settings.md: {missing}"
    assert {name: documented[name] for name in DEFAULTS} == DEFAULTS


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ("bootstrap_base_packages=Bad!", "bootstrap_base_packages"),
        ("bootstrap_time_sync=maybe", "bootstrap_time_sync"),
        ("docker_socket_mode=0666", "docker_socket_mode"),
        ("sysbox_version=x", "sysbox_version"),
        ("smoke_modes=dood,lxc", "smoke_modes"),
    ],
)
def test_bad_setting_stops_before_any_operation(data: str, key: str, tmp_path: Path) -> None:
    assert_refused_before_any_operation(dry_run("bootstrap", data, cwd=tmp_path), "Invalid", key)


def test_defaults_are_valid() -> None:
    assert validate({})["smoke_enabled"] is True


def test_sysbox_installed_when_preflight_passes() -> None:
    assert sysbox_decision(None, required=True) is None
    assert sysbox_decision(None, required=False) is None


def test_sysbox_skipped_with_its_reason() -> None:
    reason = "the kernel 5.4 is older than 5.12"
    assert sysbox_decision(reason, required=False) == reason


def test_sysbox_required_makes_the_reason_an_error() -> None:
    with pytest.raises(DeployError, match=r"sysbox_required.*older than 5\.12"):
        sysbox_decision("the kernel 5.4 is older than 5.12", required=True)


def test_vps_example_groups_are_valid() -> None:
    namespace = runpy.run_path(str(project_file("inventories", "vps.example.py")))
    groups = {
        name: value
        for name, value in namespace.items()
        if not name.startswith("_") and isinstance(value, tuple | list)
    }
    assert {"ci_runners", "build_hosts"} <= set(groups)
    assert groups["ci_runners"][1]["sysbox_required"] is True
    assert groups["build_hosts"][1]["smoke_modes"] == ["dood", "dind"]
    for hosts, data in groups.values():
        assert hosts
        assert data["_sudo"] is True
        validate(data)


def test_time_sync_leaves_another_time_daemon_alone() -> None:
    assert time_keeper({"chrony": ["4.3-2"], "curl": ["7.88"]}) == "chrony"
    assert time_keeper({"ntpsec": ["1.2"]}) == "ntpsec"
    assert time_keeper({"systemd-timesyncd": ["252"]}) is None


def test_sysbox_required_stops_the_host_in_one_line(tmp_path: Path) -> None:
    # Offline without a package, Sysbox can never be installed, whatever this machine is.
    run = dry_run("bootstrap", "sysbox_required=true", "sysbox_offline=true", cwd=tmp_path)
    assert run.returncode != 0, run.output
    output = run.output
    errors = [line for line in output.splitlines() if "sysbox_required" in line]
    assert len(errors) == 1 and "cannot be installed" in errors[0], output
    assert "Traceback" not in output
