"""Serve the job socket (a policy proxy in front of dockerd): `pyinfra INV deploys/guard.py`."""

from dindkit.guard import install_guard

install_guard()
