"""Install Docker Engine with a systemd-managed socket: `pyinfra INVENTORY deploys/docker.py`."""

from dindkit.docker import install_docker

install_docker()
