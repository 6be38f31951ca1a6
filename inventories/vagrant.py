"""pyinfra inventory of the running machines of the Vagrantfile (see README, "Vagrant").

    pyinfra -y inventories/vagrant.py deploys/bootstrap.py
    VAGRANT_MACHINES=debian12,ubuntu2404 pyinfra -y inventories/vagrant.py deploys/bootstrap.py

Hosts are named after the machines (debian12, debian13, ubuntu2204, ubuntu2404) and grouped by
distribution (debian, ubuntu). They connect as the user vagrant and run commands through sudo
(host data ``_sudo: True``). Set the Vagrantfile's folder with VAGRANT_CWD if it is not the
parent of this file. With DINDKIT_VAGRANT_LOCAL_BOX=1 (the Vagrantfile then uses the boxes of
``dindkit lab box``) the hosts download nothing: Debian's docker.io, Sysbox only from an offline
package, no time sync, and the smoke image from the local archive (``dindkit images build``).
"""

import os
from pathlib import Path

from dindkit.vagrant import LOCAL_BOX_VARIABLE, groups, inventory

_folder = Path(os.environ.get("VAGRANT_CWD") or Path(__file__).resolve().parent.parent)
_hosts = inventory(
    _folder,
    os.environ.get("VAGRANT_MACHINES", ""),
    offline=os.environ.get(LOCAL_BOX_VARIABLE) == "1",
)

vagrant = _hosts
globals().update(groups(_hosts))
