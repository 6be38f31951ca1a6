"""dindkit: provision hosts for Docker-in-Docker with pyinfra, and prove they work."""

__version__ = "0.1.0"
