"""Package discovery for setuptools; the project's metadata and dependencies are in pyproject.toml.

Besides the code packages, the top-level ``resources/`` folder (sample images, icons, style sheets) is
shipped inside the installed package as ``efficientsam_studio/_resources``, where
``efficientsam_studio.resources.resource_path`` finds it. The folder stays where it is in the
repository; each of its subfolders becomes a data-only package so that the wheel and the sdist carry
every file of it.
"""

from pathlib import Path

from setuptools import find_packages, setup

RESOURCES = Path("resources")
RESOURCE_PACKAGE = "efficientsam_studio._resources"


def resource_packages() -> dict[str, list[str]]:
    """Data package name -> file patterns, one entry per folder of ``resources/``."""
    folders = [RESOURCES, *sorted(p for p in RESOURCES.rglob("*") if p.is_dir() and p.name != "__pycache__")]
    return {".".join([RESOURCE_PACKAGE, *f.relative_to(RESOURCES).parts]): ["*"] for f in folders}


resources = resource_packages()
setup(
    packages=[*find_packages(include=["efficientsam_studio*", "trainer*"]), *resources],
    package_dir={RESOURCE_PACKAGE: str(RESOURCES)},
    package_data={"efficientsam_studio": ["py.typed"], **resources},
)
