"""Counting changed operations in pyinfra 3.10's console output (DeployRun.changed_operations)."""

from __future__ import annotations

import pytest

from dindkit.lab.pyinfra_output import changed_operation_names, changed_operations

TWO_HOSTS = """\
--> Loading config...
--> Connecting to hosts...
    [lab-a] Connected
    [lab-b] Connected

--> Beginning operation run...
--> Starting operation: Install Docker
    [lab-a] Success
    [lab-b] No changes

--> Starting operation: Write /etc/docker/daemon.json
    [lab-b] Success
    [lab-a] Success

--> Starting operation: Ensure the docker group exists
    [lab-a] No changes
    [lab-b] No changes

--> Results:
    Operation                         Hosts   Success   Error   No Change
    Install Docker                    2       1         -       1
    Write /etc/docker/daemon.json     2       2         -       -
    Ensure the docker group exists    2       -         -       2
    Grand total                       6       3         -       3

--> Disconnecting from hosts...
"""

NO_OP = """\
--> Starting operation: Install Docker
    \x1b[32m[lab-a]\x1b[0m \x1b[2mNo changes\x1b[0m

--> Results:
    Operation        Hosts   Success   Error   No Change
    Install Docker   1       -         -       1
    Grand total      1       -         -       1
"""

FAILED = """\
--> Starting operation: Restart Docker
    [lab-a] Success

--> Starting operation: Wait for the daemon
    [lab-a] Error: executed 0 commands

--> Disconnecting from hosts...
--> pyinfra error: No hosts remaining!
"""


def test_changes_are_counted_per_host() -> None:
    assert changed_operations(TWO_HOSTS, "lab-a") == 2
    assert changed_operations(TWO_HOSTS, "lab-b") == 1
    assert changed_operations(TWO_HOSTS) == 3


def test_a_no_op_run_counts_zero_even_with_colours() -> None:
    assert changed_operations(NO_OP, "lab-a") == 0


def test_changes_before_an_error_count() -> None:
    assert changed_operations(FAILED, "lab-a") == 1


def test_the_grand_total_is_the_fallback() -> None:
    table_only = TWO_HOSTS[TWO_HOSTS.index("--> Results:") :]
    assert changed_operations(table_only, "lab-a") == 3


def test_hosts_are_matched_exactly() -> None:
    assert changed_operations(TWO_HOSTS.replace("lab-b", "lab-bb"), "lab-b") == 3  # fallback


def test_output_without_results_is_an_error() -> None:
    with pytest.raises(ValueError, match="no pyinfra operation results"):
        changed_operations("--> pyinfra error: could not connect\n", "lab-a")


def test_names_of_changed_operations() -> None:
    assert changed_operation_names(TWO_HOSTS, "lab-a") == [
        "Install Docker",
        "Write /etc/docker/daemon.json",
    ]
    assert changed_operation_names(TWO_HOSTS, "lab-b") == ["Write /etc/docker/daemon.json"]
    assert changed_operation_names(NO_OP, "lab-a") == []
