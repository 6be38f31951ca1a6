"""Settings as documented data: one table per capability, validated before any host is touched.

Each capability module (dindkit/settings/<capability>.py) declares a ``SettingsTable`` of
``Setting`` rows: name, default, one-line description and a check. A check returns the
normalised value or raises ``SettingError`` with what is allowed; ``SettingsTable.validate``
turns that into pyinfra's ``DeployError`` naming the key and the value, so the CLI prints one
line and no traceback. The README's settings table is tested against ``ALL_TABLES``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
        for setting in self.settings:
            value = data.get(setting.name)
            if value is None:
                value = setting.default
            try:
                values[setting.name] = setting.check(value)
            except SettingError as error:
                raise DeployError(f"Invalid setting {setting.name}={value!r}: {error}") from None
        for cross_check in self.cross_checks:
            try:
                cross_check(values)
            except SettingError as error:
                raise DeployError(f"Invalid settings for {self.capability}: {error}") from None
        return values


# Checks. Each returns the normalised value or raises SettingError("<what is allowed>").


def one_of(*choices: Any) -> Check:
    def check(value: Any) -> Any:
        if value not in choices:
            raise SettingError("allowed: " + ", ".join(repr(choice) for choice in choices))
        return value

    return check


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def boolean(value: Any) -> bool:
    # `pyinfra --data key=true` may arrive as a string.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise SettingError("allowed: true or false")


def integer(minimum: int, maximum: int) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool):
            raise SettingError(f"allowed: a whole number from {minimum} to {maximum}")
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or not minimum <= value <= maximum:
            raise SettingError(f"allowed: a whole number from {minimum} to {maximum}")
        return value

    return check


def optional(inner: Check) -> Check:
    """``None`` or an empty string mean "not set"; anything else goes through ``inner``."""

    def check(value: Any) -> Any:
        if value is None or value == "":
            return None
        return inner(value)

    return check


def matching(pattern: str, what: str) -> Check:
    compiled = re.compile(pattern)

    def check(value: Any) -> str:
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise SettingError(f"allowed: {what}")
        return value

    return check


def list_of(inner: Check) -> Check:
    """A list, or a comma-separated string as ``pyinfra --data key=a,b`` gives it."""

    def check(value: Any) -> list[Any]:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list | tuple):
            raise SettingError("allowed: a list")
        return [inner(item) for item in value]

    return check


def mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SettingError("allowed: a mapping (dict)")
    return dict(value)


def url(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s]+", value):
        raise SettingError("allowed: an http:// or https:// URL")
    return value.rstrip("/")


def sha256(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise SettingError("allowed: a sha256 checksum, 64 hexadecimal digits")
    return value.lower()


# POSIX-portable account names as useradd/groupadd accept them by default.
NAME_PATTERN = r"[a-z_][a-z0-9_-]{0,31}"
account_name = matching(
    NAME_PATTERN,
    "a name of lowercase letters, digits, '_' and '-', "
    "starting with a letter or '_', at most 32 characters",
)
