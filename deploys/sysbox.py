"""Install Sysbox after Docker: `pyinfra INVENTORY deploys/sysbox.py`.

The host preflight (systemd, distribution, kernel, architecture) and the package source are
checked first, so a host that cannot run Sysbox stops before Docker is installed or changed.
Settings: README, "Sysbox".
"""

from dindkit.docker import install_docker
from dindkit.sysbox import check_before_docker, install_sysbox

if check_before_docker():
    install_docker()
install_sysbox()
