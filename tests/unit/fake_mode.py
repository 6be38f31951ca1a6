"""A stand-in smoke mode, registered the way a new mode is: its module (this one, as
dindkit.smoke.modes.fake) and its name added to SMOKE_MODES, nothing else.

``register`` takes monkeypatch's ``setattr`` and ``setitem``; plain ones in a subprocess.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dindkit.lab.state import cache_dir
from dindkit.settings import smoke as smoke_settings
from dindkit.smoke.escape import expect
from dindkit.smoke.modes import Context, Mode, ModeImage, ModeSpec, Step
from dindkit.smoke.modes.common import Settings

NAME = "fake"
TITLE = "fake: a stand-in mode registered by a test"
BUILDS: list[dict[str, Any]] = []  # the keyword arguments of each build of its image


def image_archive() -> Path:
    return cache_dir() / "images" / "dindkit-fake-0123abcd.tar.gz"


def build_image(**options: Any) -> Path:
    BUILDS.append(options)
    return image_archive()


def build(ctx: Context) -> Mode:
    return Mode(
        name=NAME,
        title=TITLE,
        grants="nothing",
        setup=(),
        checks=(Step("noop"),),
        values={"FAKE_IMAGE": ctx.images.get(NAME, ""), "FAKE": ctx.options.get(NAME, "")},
        template="smoke/dood.sh.j2",
        expected=SPEC.expected,
    )


def check_settings(smoke: Settings, docker: Settings) -> None:
    print(f"fake: settings checked, smoke_modes={','.join(smoke['smoke_modes'])}")


SPEC = ModeSpec(
    name=NAME,
    summary="a stand-in",
    build=build,
    expected=expect(),
    images=(ModeImage(NAME, "fake image", image_archive, build_image, changes=("CMD []",)),),
    check_settings=check_settings,
    plan_note=lambda: "a fake note",
    options=lambda smoke, docker: {NAME: smoke["smoke_timeout"]},
)


def register(
    set_attribute: Callable[[Any, str, Any], None] = setattr,
    set_item: Callable[[Any, str, Any], None] = dict.__setitem__,  # type: ignore[assignment]
) -> None:
    """Add this mode to the registry: its module and its name, nothing else."""
    set_item(sys.modules, f"dindkit.smoke.modes.{NAME}", sys.modules[__name__])
    set_attribute(smoke_settings, "SMOKE_MODES", (*smoke_settings.SMOKE_MODES, NAME))
