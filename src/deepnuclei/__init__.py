"""deepnuclei: segmentation of the deep brain nuclei from QSM and T1 MRI.

One module per workflow stage; every module works on numpy arrays and NIfTI files and is
usable without Snakemake.
"""

__version__ = "0.1.0"
