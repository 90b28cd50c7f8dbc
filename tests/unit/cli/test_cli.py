"""The `deepnuclei` command's process set-up."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

FREED_BYTES = """
import ctypes, sys
import numpy as np
from deepnuclei.cli import keep_freed_memory
if sys.argv[1] == "keep":
    keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Mallinfo2
volume = np.ones((160, 192, 80), np.float32)  # 9.4 MiB, a volume's size
del volume
print(libc.mallinfo2().fordblks)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc options")
def test_a_freed_volume_stays_in_the_heap_for_the_next_one() -> None:
    """Without the options glibc maps a block this large on its own and unmaps it when freed."""
    free = {mode: int(subprocess.run([sys.executable, "-c", FREED_BYTES, mode], capture_output=True, text=True,
                                     check=True).stdout) for mode in ("keep", "default")}
    volume_bytes = 160 * 192 * 80 * 4
    assert free["keep"] >= volume_bytes > free["default"]
