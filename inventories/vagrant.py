"""pyinfra inventory of the running machines of the Vagrantfile (see README, "Vagrant").

    pyinfra -y inventories/vagrant.py deploys/bootstrap.py
    VAGRANT_MACHINES=debian12,ubuntu2404 pyinfra -y inventories/vagrant.py deploys/bootstrap.py

Hosts are named after the machines (debian12, debian13, ubuntu2204, ubuntu2404) and grouped by
distribution (debian, ubuntu). They connect as the user vagrant and run commands through sudo
(host data ``_sudo: True``). Set the Vagrantfile's folder with VAGRANT_CWD if it is not the
parent of this file.
"""

import os
from pathlib import Path

from dindkit.vagrant import groups, inventory

_folder = Path(os.environ.get("VAGRANT_CWD") or Path(__file__).resolve().parent.parent)
_hosts = inventory(_folder, os.environ.get("VAGRANT_MACHINES", ""))

vagrant = _hosts
globals().update(groups(_hosts))
