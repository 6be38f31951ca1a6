"""Smoke tests for every Docker-in-Docker mode: modes as data (modes.py), the pyinfra deploy
that runs them on the targets (deploy.py) and the ``dindkit smoke`` command (cli.py)."""
