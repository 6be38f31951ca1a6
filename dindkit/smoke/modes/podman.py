"""podman: rootless Podman inside an unprivileged container with zero added capabilities."""

from __future__ import annotations

from dindkit import images
from dindkit.images import PODMAN_CHANGES, PODMAN_UID
from dindkit.smoke.escape import expect
from dindkit.smoke.modes.common import (
    Context,
    Mode,
    ModeImage,
    ModeSpec,
    Runner,
    Step,
    ci_steps,
)

GRANTS = "nothing added: a non-root container without capabilities, one UID mapped"
EXPECTED = expect()  # every attempt blocked

# Registry-free everywhere: built from Debian packages, imported into the host's store. The
# builders are looked up when called, so that a test can stand in for them.
IMAGE = ModeImage(
    kind="podman",
    what="podman image",
    archive=lambda: images.podman_image_archive(),
    build=lambda **options: images.build_podman_image(**options),
    changes=PODMAN_CHANGES,
)


def skip_reason(ctx: Context, run: Runner) -> str | None:
    ok, _ = run("test -c /dev/net/tun")
    return None if ok else "the host has no /dev/net/tun (slirp4netns needs it)"


# The job's client in the CI steps: podman with the inner build's storage options
# (templates/smoke/inner/podman.sh.j2), verifying the registry with its CA (--cert-dir, where the
# container gets the CA read-only).
CI_CLIENT = {
    "CI_ENGINE": "podman",
    "CI_DOCKER": "podman --storage-driver=vfs --cgroup-manager=cgroupfs --events-backend=file",
    "CI_CERT_DIR": "/etc/dindkit-ci-certs",
}


def build(ctx: Context) -> Mode:
    values = {"PODMAN_IMAGE": ctx.images.get(IMAGE.kind, ""), "PODMAN_UID": PODMAN_UID}
    if ctx.ci:
        values.update(CI_CLIENT)
    return Mode(
        name="podman",
        title="podman: rootless Podman in a container with no added capability",
        grants=GRANTS,
        setup=(Step("start-container"),),
        checks=(
            Step("no-capabilities"),
            Step("not-root-on-host"),
            Step("inner-build"),
            Step("inner-run"),
        ),
        values=values,
        ci=ci_steps(ctx),
        skip_reason=skip_reason,
        expected=EXPECTED,
    )


SPEC = ModeSpec(
    name="podman",
    summary="rootless Podman inside a non-root container with no added capability",
    build=build,
    expected=EXPECTED,
    images=(IMAGE,),
)
