"""Read-only: gather each host's Docker and Sysbox facts into a JSON file (``dindkit doctor``).

    pyinfra --dry INVENTORY deploys/doctor.py --data doctor_output_dir=DIR

It plans no operation at all; ``dindkit doctor`` also runs it with --dry.
"""

from dindkit.doctor import collect

collect()
