"""dindkit's own pyinfra facts, one module per capability (``dindkit.facts.docker``, ...)."""
