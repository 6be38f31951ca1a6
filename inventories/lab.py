"""pyinfra inventory of the running lab VMs (``dindkit lab up``); see README, "Lab".

    pyinfra -y inventories/lab.py deploys/bootstrap.py --limit lab-default

Hosts are named ``lab-<name>`` and grouped by distribution (bookworm, trixie); all of them are
in the group ``lab``. They are throwaway VMs reached on a forwarded port of 127.0.0.1 as root
with the lab's own key, without host key checks. This file is the only place where the lab
meets the deploys: lab hosts install the distribution's docker.io (no Docker repository is
reachable from a lab), Sysbox only from an offline package, and load the smoke image from the
local archive instead of pulling it; rootless Docker for the image's user ``dindkit``,
userns-remap on and the job socket, for the unprivileged and guarded smoke modes; the local
registry, for every mode's CI steps.
"""

import os

from dindkit.images import smoke_image_archive
from dindkit.lab import list_labs
from dindkit.lab.image import LAB_USER

# The distributions whose labs run the local registry, and with it every smoke mode's CI flow:
# DINDKIT_LAB_REGISTRY=bookworm,trixie (unset: every one; empty: none). The lab test suite keeps
# this slow path to one distribution.
REGISTRY_DISTROS = os.environ.get("DINDKIT_LAB_REGISTRY")


def _registry_enabled(distro):
    return REGISTRY_DISTROS is None or distro in REGISTRY_DISTROS.split(",")


def _host(lab):
    return (
        lab.host,
        {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": lab.ssh_port,
            "ssh_user": "root",
            "ssh_key": str(lab.key_path),
            "ssh_strict_host_key_checking": "off",
            "ssh_known_hosts_file": "/dev/null",
            "lab_name": lab.name,
            "lab_distro": lab.distro,
            "docker_source": "distro",
            # What the unprivileged smoke modes need: a rootless user (the image has it) and
            # a daemon that remaps containers' root to an unprivileged host UID.
            "docker_rootless_users": [LAB_USER],
            "docker_userns_remap": "default",
            # The job socket (deploys/guard.py), for the guarded smoke mode.
            "guard_enabled": True,
            # The local registry (deploys/registry.py): every smoke mode ends with the CI flow
            # (build, push, pull back, run) against it.
            "registry_enabled": _registry_enabled(lab.distro),
            "sysbox_offline": True,
            # A lab reaches no NTP server (only the Debian mirror): no systemd-timesyncd.
            "bootstrap_time_sync": False,
            "smoke_image_archive": str(smoke_image_archive()),
        },
    )


_running = [lab for lab in list_labs() if lab.running]

lab = [_host(each) for each in _running]
bookworm = [_host(each) for each in _running if each.distro == "bookworm"]
trixie = [_host(each) for each in _running if each.distro == "trixie"]
