"""From a fresh host to one ready for every Docker-in-Docker mode, proven by the smoke tests.

    pyinfra -y inventories/vps.py deploys/bootstrap.py

Apt index and base packages, time sync, Docker with socket permissions, Sysbox where its
preflight passes, then the smoke tests and their report. Settings: README, "Settings".
"""

from dindkit.bootstrap import bootstrap

bootstrap()
