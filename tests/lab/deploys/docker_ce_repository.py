"""Test-only deploy: the Docker repository part of deploys/docker.py (key, sources, lists).

Used by tests/lab/test_docker_deploy.py against a repository served on the host's loopback;
it stops before packages, so the lab VM's docker.io is left alone.
"""

from pyinfra import host
from pyinfra.api import deploy

from dindkit.docker import current_platform, docker_ce_repository
from dindkit.settings.docker import DOCKER_SETTINGS


@deploy("Add Docker's repository (test)", data_defaults=DOCKER_SETTINGS.defaults)
def repository_only() -> None:
    values = DOCKER_SETTINGS.validate(host.data)
    docker_ce_repository(values, current_platform())


repository_only()
