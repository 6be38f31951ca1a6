"""Settings as documented data: one table per capability, validated before any host is touched.

Each capability module (dindkit/settings/<capability>.py) declares a ``SettingsTable`` of
``Setting`` rows: name, default, one-line description and a check. A check returns the
normalised value or raises ``SettingError`` with what is allowed; ``SettingsTable.validate``
turns that into pyinfra's ``DeployError`` naming the key and the value, so the CLI prints one
line and no traceback. The README's settings table is tested against ``ALL_TABLES``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyinfra.api.exceptions import DeployError

Check = Callable[[Any], Any]


class SettingError(ValueError):
    """Raised by a check: the text says what is allowed (and why, where it is not obvious)."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    description: str
    check: Check


@dataclass(frozen=True)
class SettingsTable:
    capability: str
    settings: tuple[Setting, ...]
    # Checks across settings, run on the normalised values; raise SettingError.
    cross_checks: tuple[Callable[[dict[str, Any]], None], ...] = field(default=())

    @property
    def defaults(self) -> dict[str, Any]:
        """For ``@deploy(..., data_defaults=...)``."""
        return {setting.name: setting.default for setting in self.settings}

    def validate(self, data: Any) -> dict[str, Any]:
        """Normalised values of every setting from host data (a dict or pyinfra HostData).

        A missing or ``None`` value takes the default. Raises ``DeployError`` on the first bad one.
        """
        values: dict[str, Any] = {}
        typed = command_line_data()
        for setting in self.settings:
            value = data.get(setting.name)
            if value is None:
                value = setting.default
            raw = typed.get(setting.name)
            if type(value) is int and raw is not None and not raw.isascii():
                # pyinfra's --data turned it into a number with int(), which reads any digits.
                raise DeployError(
                    f"Invalid setting {setting.name}={raw!r}: allowed: a number in ASCII digits"
                )
            try:
                values[setting.name] = setting.check(value)
            except SettingError as error:
                raise DeployError(f"Invalid setting {setting.name}={value!r}: {error}") from None
            except (TypeError, ValueError, AttributeError) as error:
                # A check that did not foresee the value's type: still one line, no traceback.
                raise DeployError(
                    f"Invalid setting {setting.name}={value!r}: {type(error).__name__}: {error}"
                ) from None
        for cross_check in self.cross_checks:
            try:
                cross_check(values)
            except SettingError as error:
                raise DeployError(f"Invalid settings for {self.capability}: {error}") from None
        return values


def command_line_data(argv: list[str] | None = None) -> dict[str, str]:
    """``--data key=value`` as typed on pyinfra's command line (pyinfra converts the values)."""
    argv = sys.argv if argv is None else argv
    typed: dict[str, str] = {}
    for index, argument in enumerate(argv):
        if argument == "--data" and index + 1 < len(argv):
            pair = argv[index + 1]
        elif argument.startswith("--data="):
            pair = argument.removeprefix("--data=")
        else:
            continue
        key, equals, value = pair.partition("=")
        if equals:
            typed[key] = value
    return typed


# Checks. Each returns the normalised value or raises SettingError("<what is allowed>").
# ``allows`` records, per check, the short text docs/settings.md shows as "Allowed".
ALLOWED: dict[Check, str] = {}


def allows(check: Check, text: str) -> Check:
    ALLOWED[check] = text
    return check


def allowed_text(check: Check) -> str:
    return ALLOWED.get(check, "")


def one_of(*choices: Any) -> Check:
    return one_of_current(lambda: choices)


def one_of_current(choices: Callable[[], tuple[Any, ...]]) -> Check:
    """As ``one_of``, with the choices read each time the check runs (a registry's names)."""

    def check(value: Any) -> Any:
        current = choices()
        if value not in current:
            raise SettingError("allowed: " + ", ".join(repr(choice) for choice in current))
        return value

    return allows(check, "one of " + ", ".join(f"`{choice}`" for choice in choices()))


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def boolean(value: Any) -> bool:
    # `pyinfra --data key=true` may arrive as a string.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise SettingError("allowed: true or false")


allows(boolean, "true or false (also yes/no, on/off, 1/0)")


ASCII_NUMBER = re.compile(r"[0-9]+")


def ascii_number(text: str) -> int | None:
    """``text`` as a whole number when it is written in ASCII digits only, else None.

    ``str.isdigit`` and ``int`` accept other scripts' digits (Arabic-Indic, fullwidth) and
    ``isdigit`` even superscripts that ``int`` then refuses; dindkit takes 0-9 only.
    """
    text = text.strip()
    return int(text) if ASCII_NUMBER.fullmatch(text) else None


def integer(minimum: int, maximum: int) -> Check:
    allowed = f"allowed: a whole number from {minimum} to {maximum}"

    def check(value: Any) -> int:
        if isinstance(value, bool):
            raise SettingError(allowed)
        if isinstance(value, str):
            number = ascii_number(value)
            if number is None:
                raise SettingError(allowed + ", in ASCII digits")
            value = number
        if not isinstance(value, int) or not minimum <= value <= maximum:
            raise SettingError(allowed)
        return value

    return allows(check, f"a whole number from {minimum} to {maximum} (ASCII digits)")


def optional(inner: Check) -> Check:
    """``None`` or an empty string mean "not set"; anything else goes through ``inner``."""

    def check(value: Any) -> Any:
        if value is None or value == "":
            return None
        return inner(value)

    return allows(check, f"unset, or {allowed_text(inner)}")


def matching(pattern: str, what: str) -> Check:
    compiled = re.compile(pattern)

    def check(value: Any) -> str:
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise SettingError(f"allowed: {what}")
        return value

    return allows(check, what)


def bridge_address(value: Any) -> str:
    """A Docker bridge's own address with its prefix (dockerd --bip), e.g. 10.250.0.1/24."""
    allowed = (
        "allowed: an IPv4 address with a prefix length from 8 to 30 that is a host of its "
        "network, outside 172.17.0.0/16 (e.g. 10.250.0.1/24)"
    )
    if not isinstance(value, str):
        raise SettingError(allowed)
    try:
        interface = ipaddress.IPv4Interface(value.strip())
    except ValueError:
        raise SettingError(allowed) from None
    network = interface.network
    if (
        "/" not in value
        or not 8 <= network.prefixlen <= 30
        or interface.ip in (network.network_address, network.broadcast_address)
        or network.overlaps(HOST_DOCKER_BRIDGE)
    ):
        raise SettingError(allowed)
    return str(interface)


allows(
    bridge_address,
    "an IPv4 address/prefix (8-30) of a host in its network, outside 172.17.0.0/16 "
    "(e.g. 10.250.0.1/24)",
)
# The host's own docker0: a nested daemon's bridge there would hide the host's address.
HOST_DOCKER_BRIDGE = ipaddress.IPv4Network("172.17.0.0/16")


def list_of(inner: Check, at_least: int = 0) -> Check:
    """A list, or a comma-separated string as ``pyinfra --data key=a,b`` gives it; each item
    once, at least ``at_least`` items."""

    def check(value: Any) -> list[Any]:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list | tuple):
            raise SettingError("allowed: a list")
        if len(value) < at_least:
            raise SettingError(f"allowed: a list of at least {at_least} item(s); it is empty")
        items = [inner(item) for item in value]
        repeated = sorted({str(item) for item in items if items.count(item) > 1})
        if repeated:
            raise SettingError(f"allowed: each item once; repeated: {', '.join(repeated)}")
        return items

    least = f"at least {at_least}, " if at_least else ""
    return allows(
        check, f"a list ({least}each once; `a,b` on the command line) of: " + allowed_text(inner)
    )


def mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SettingError("allowed: a mapping (dict)")
    return dict(value)


allows(mapping, "a mapping")


# An http(s) URL of the characters a mirror's address needs: host (name, IPv4, or [IPv6]),
# optional port, path. No whitespace, quotes, `$`, `;`, `&`, `|`, backticks, `<>`, `()`, `\`,
# `*`, `!` or `#`: the URL ends up on the target's command lines and in apt's sources.
_URL = re.compile(
    r"https?://"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])"
    r"(?::[0-9]{1,5})?"
    r"(?:/[A-Za-z0-9._~%+=,@:/-]*)?"
)
URL_ALLOWED = (
    "allowed: an http:// or https:// URL: a host name or address, an optional port and a path "
    "of letters, digits and . _ ~ % + = , @ : / - (no spaces, quotes or shell characters)"
)


def url(value: Any) -> str:
    if not isinstance(value, str) or not _URL.fullmatch(value):
        raise SettingError(URL_ALLOWED)
    return value.rstrip("/")


allows(
    url,
    "an http:// or https:// URL: host, optional port, path of letters, digits and "
    "`._~%+=,@:/-` (no spaces, quotes or shell characters)",
)


def sha256(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise SettingError("allowed: a sha256 checksum, 64 hexadecimal digits")
    return value.lower()


allows(sha256, "64 hexadecimal digits")


# POSIX-portable account names as useradd/groupadd accept them by default.
NAME_PATTERN = r"[a-z_][a-z0-9_-]{0,31}"
NAME_RULE = (
    "a name of lowercase letters, digits, '_' and '-', "
    "starting with a letter or '_', at most 32 characters"
)
account_name = matching(NAME_PATTERN, NAME_RULE)


def user_name(value: Any) -> str:
    """An account that is not root (its Docker is the system one; everything else is moot)."""
    name = account_name(value)
    if name == "root":
        raise SettingError(f"allowed: {NAME_RULE}, other than root")
    return name


allows(user_name, f"{NAME_RULE}; not root")


# Groups whose members must not all become root through the Docker socket, or that the
# system itself owns (a socket in root's group is root's alone, and GID 0 is refused too).
SYSTEM_GROUPS = frozenset(
    [
        "root",
        "adm",
        "audio",
        "bin",
        "cdrom",
        "daemon",
        "dialout",
        "dip",
        "disk",
        "floppy",
        "games",
        "input",
        "kmem",
        "kvm",
        "lp",
        "mail",
        "man",
        "netdev",
        "news",
        "nogroup",
        "operator",
        "plugdev",
        "proxy",
        "render",
        "sasl",
        "shadow",
        "src",
        "staff",
        "sudo",
        "sys",
        "systemd-journal",
        "tape",
        "tty",
        "users",
        "utmp",
        "uucp",
        "video",
        "voice",
        "wheel",
        "www-data",
    ]
)


def group_name(value: Any) -> str:
    name = account_name(value)
    if name in SYSTEM_GROUPS:
        raise SettingError(
            f"allowed: {NAME_RULE}, not a system group such as root, sudo, adm or users "
            "(every member of the socket group is root on this host)"
        )
    return name


allows(group_name, f"{NAME_RULE}; not root or another system group (sudo, adm, users, ...)")


# Paths on the control machine. The smoke deploy uploads smoke_image_archive to every target and
# the Sysbox deploy sysbox_package_file; the smoke deploy writes (and replaces) report files in
# smoke_report_dir. One positive rule keeps a typo or a hostile inventory from uploading
# /etc/shadow or ~/.ssh/id_ed25519, or from writing into /etc: the resolved path (symbolic
# links followed, relative to the working directory) lies below one of these folders, with no
# hidden folder (".ssh", ".gnupg", ".git", ...) on the way down from it.
# The working directory and the home count unless they are / or in a system folder (a deploy
# started from /etc, a service account whose home is /).
SYSTEM_FOLDERS = tuple(
    Path(folder)
    for folder in [
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/proc",
        "/run",
        "/sbin",
        "/sys",
        "/usr",
        "/var",
    ]
)
OTHER_ROOTS = ("/tmp", "/var/tmp", "/srv", "/opt", "/mnt", "/media")


def control_roots() -> tuple[Path, ...]:
    from dindkit.cache import cache_dir

    roots = [Path(os.path.realpath(root)) for root in (cache_dir(), *OTHER_ROOTS)]
    for place in (Path.cwd(), Path.home()):
        resolved = Path(os.path.realpath(place))
        if resolved != Path("/") and not any(map(resolved.is_relative_to, SYSTEM_FOLDERS)):
            roots.append(resolved)
    return tuple(roots)


CONTROL_PATH_RULE = (
    "below the working directory, dindkit's cache, your home, /tmp, /var/tmp, /srv, /opt, "
    "/mnt or /media, with no hidden name (.ssh, .gnupg, ...) below that folder"
)


def _below_a_root(path: Path) -> bool:
    for root in control_roots():
        if (
            path != root
            and path.is_relative_to(root)
            and not any(part.startswith(".") for part in path.relative_to(root).parts)
        ):
            return True
    return False


def _control_path(value: Any, what: str, expand: bool) -> Path:
    allowed = f"allowed: {what} {CONTROL_PATH_RULE}"
    if not isinstance(value, str) or not value.strip() or "\0" in value or "\n" in value:
        raise SettingError(allowed)
    path = Path(os.path.expanduser(value) if expand else value)
    resolved = Path(os.path.realpath(path))
    if not _below_a_root(resolved):
        raise SettingError(f"{allowed}; it resolves to {resolved}")
    return resolved


# First bytes of the archives the targets can read: gzip (.tar.gz, .tgz), ar (.deb).
GZIP_MAGIC = b"\x1f\x8b"
AR_MAGIC = b"!<arch>\ndebian-binary"
TAR_MAGIC_OFFSET, TAR_MAGIC = 257, b"ustar"


def _looks_like(path: Path, suffix: str) -> bool:
    with path.open("rb") as stream:
        head = stream.read(512)
    if suffix in (".tar.gz", ".tgz"):
        return head.startswith(GZIP_MAGIC)
    if suffix == ".tar":
        return head[TAR_MAGIC_OFFSET : TAR_MAGIC_OFFSET + len(TAR_MAGIC)] == TAR_MAGIC
    return head.startswith(AR_MAGIC)


def control_file(what: str, suffixes: tuple[str, ...]) -> Check:
    """A file on the control machine that a deploy uploads: a name ending in one of
    ``suffixes``, below an allowed folder and, where it exists already, a readable regular
    file whose first bytes match its kind. A missing file is left to the deploy (it says how
    to build one)."""
    kind = f"{what} ({', '.join(suffixes)})"

    def check(value: Any) -> str:
        resolved = _control_path(value, f"a path of {kind}", expand=True)
        suffix = next((end for end in suffixes if resolved.name.endswith(end)), None)
        if suffix is None or resolved.name == suffix:
            raise SettingError(f"allowed: a path of {kind} {CONTROL_PATH_RULE}")
        if os.path.lexists(resolved):
            if not resolved.is_file():
                raise SettingError(f"allowed: {kind} that is a regular file")
            try:
                matches = _looks_like(resolved, suffix)
            except OSError as error:
                raise SettingError(f"allowed: {kind} you can read ({error.strerror})") from None
            if not matches:
                raise SettingError(f"allowed: {kind}; this file's content is not one")
        return str(value)

    return allows(
        check,
        f"a path on the control machine of {kind} {CONTROL_PATH_RULE}; where it exists, a "
        "readable regular file of that kind",
    )


def control_folder(value: Any) -> str:
    """A folder on the control machine that a deploy writes into (see ``control_roots``)."""
    resolved = _control_path(value, "a folder", expand=False)
    if os.path.lexists(resolved) and not resolved.is_dir():
        raise SettingError(f"allowed: a folder {CONTROL_PATH_RULE}; {resolved} is not a folder")
    return str(value)


allows(control_folder, f"a folder on the control machine {CONTROL_PATH_RULE}")
