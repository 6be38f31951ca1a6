"""A local registry (and mirror) when registry_enabled: `pyinfra INVENTORY deploys/registry.py`."""

from dindkit.registry import local_registry

local_registry()
