"""dindkit's own pyinfra operations, one module per capability (``dindkit.operations.docker``)."""
