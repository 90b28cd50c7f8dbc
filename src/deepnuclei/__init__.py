"""deepnuclei: segmentation of the deep brain nuclei from QSM and T1 MRI.

One module per workflow stage; every module works on numpy arrays and NIfTI files and is
usable without Snakemake.
"""

import subprocess
from pathlib import Path

__version__ = "0.1.0"


def code_version() -> str:
    """The package version, and the git commit where the package runs from a checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit}"
