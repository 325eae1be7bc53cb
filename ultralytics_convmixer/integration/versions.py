"""The torch and Ultralytics releases the plugin declares it supports, and a warning where the installed one is not.

The ranges are the package's own requirements (``pyproject.toml``, read back from the installed metadata), written
nowhere else. A release outside them gets one warning naming it and the range, never an error at start-up: the
plugin's use of that release's internals is checked where it happens (``registration.require``), and its APIs that
older torch releases lack have fallbacks.
"""

from __future__ import annotations

import re
import warnings
from importlib.metadata import PackageNotFoundError, requires, version
from typing import Dict, Optional

DISTRIBUTION = "ultralytics-convmixer"
CHECKED = ("ultralytics", "torch")
_warned = set()


def declared(name: str) -> Optional[str]:
    """Return the version range the installed package declares for ``name`` (``">=8.3.253,<8.5"``), or None.

    Args:
        name (str): A requirement's distribution name.

    Returns:
        (str | None): The specifier, or None when the package runs from a checkout without metadata or does not
        require ``name``.
    """
    try:
        requirements = requires(DISTRIBUTION) or []
    except PackageNotFoundError:
        return None
    for requirement in requirements:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(\[[^]]*\])?\s*([^;]*)", requirement)
        if match and match.group(1).lower() == name and ";" not in requirement:
            clauses = [c.strip() for c in match.group(3).split(",") if c.strip()]
            # lower bound first, as people write a range (installers may store "<8.5,>=8.3.253")
            return ",".join(sorted(clauses, key=lambda c: not c.startswith(">"))) or None
    return None


def installed() -> Dict[str, str]:
    """Return the installed release of each checked package (those not installed are left out)."""
    found = {}
    for name in CHECKED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def warn_outside_declared_ranges() -> None:
    """Warn once per package whose installed release is outside the range the plugin declares for it."""
    from ultralytics.utils.checks import check_version

    for name, release in installed().items():
        spec = declared(name)
        if spec is None or name in _warned or check_version(release.split("+")[0], spec, hard=False, verbose=False):
            continue
        _warned.add(name)
        warnings.warn(
            f"ultralytics-convmixer supports {name}{spec}, and this is {name} {release}: it may work, but it was not "
            f"tested. Install a release in that range if anything fails (pip install '{name}{spec}').",
            RuntimeWarning,
            stacklevel=3,
        )
