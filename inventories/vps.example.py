"""Example inventory of real servers. Copy it and edit the copy:

    cp inventories/vps.example.py inventories/vps.py      # inventories/vps.py is git-ignored
    pyinfra inventories/vps.py deploys/bootstrap.py       # add -y to skip the confirmation

A pyinfra inventory is a Python file: every module-level list is a group of hosts, and a group
written as ``(hosts, data)`` gives each of its hosts that data. A host is a name, or
``(name, data)`` for data of its own. Host data wins over group data; ``pyinfra --data key=value``
wins over both. Every dindkit setting is listed in README.md, "Settings".
"""

# SSH: connect as a user with passwordless sudo and run every command through sudo. To log in
# as root instead, set "ssh_user": "root" and drop "_sudo".
_ssh = {
    "ssh_user": "deploy",
    "ssh_key": "~/.ssh/id_ed25519",
    "_sudo": True,
    # A fixed GID for the socket group lets DooD containers use `--group-add 2375`
    # the same way on every host.
    "docker_socket_gid": 2375,
    # Your own login may talk to Docker without sudo (it is root-equivalent: see README,
    # "Security notes"). The user must exist already.
    "docker_users": ["deploy"],
}

# CI runner hosts: jobs build images inside containers, without --privileged, so Sysbox is a
# must. The deploy stops with the failed preflight checks if a host cannot run it.
ci_runners = (
    [
        "ci-1.example.com",
        # A host with data of its own: another SSH port.
        ("ci-2.example.com", {"ssh_port": 2222}),
    ],
    {
        **_ssh,
        "sysbox_required": True,
        # Docker restarts when Sysbox is installed; stop running containers for that instead of
        # refusing (the refusal lists them).
        "sysbox_stop_containers": True,
        "smoke_modes": ["dood", "dind", "sysbox"],
    },
)

# Build hosts: trusted jobs that may use privileged DinD; no Sysbox wanted. Without
# sysbox_state "absent" the bootstrap would install Sysbox wherever its preflight passes;
# "absent" keeps it off (and purges it where it was installed).
build_hosts = (
    [
        "build-1.example.com",
    ],
    {
        **_ssh,
        "sysbox_state": "absent",
        "smoke_modes": ["dood", "dind"],
        # The distribution's docker.io instead of Docker's own repository:
        # "docker_source": "distro",
    },
)

# Hosts without registry access: load the smoke image from a tarball made on this machine
# (`dindkit images build`) instead of pulling, and give Sysbox a local package.
# air_gapped = (
#     ["10.0.0.5"],
#     {
#         **_ssh,
#         "smoke_image_archive": "/home/me/.cache/dindkit/images/dindkit-smoke-<hash>.tar.gz",
#         "sysbox_offline": True,
#         "sysbox_package_file": "/srv/debs/sysbox-ce_0.6.7-0.linux_amd64.deb",
#         "sysbox_package_sha256": "<64 hexadecimal digits>",
#     },
# )
