"""Installed versions of the packages a figure or a checkpoint depends on (standard library only,
so that every layer may record them)."""

from __future__ import annotations

from importlib import metadata

PACKAGES = ("torch", "accelerate", "transformers", "numpy", "scikit-learn", "pandas", "deepspeed")
"""What every result's environment records."""


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed version of each named distribution ("not installed" where absent)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
