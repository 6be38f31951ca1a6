"""Smoke-test every Docker-in-Docker mode: ``pyinfra INVENTORY deploys/smoke.py``.

Writes report.json and junit.xml to smoke_report_dir (default reports/latest); exits non-zero
when a mode failed. ``dindkit smoke INVENTORY`` runs this and prints the report's table.
"""

from dindkit.smoke.deploy import run_smoke_tests

run_smoke_tests()
