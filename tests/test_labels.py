"""Label table and task remapping."""

import numpy as np

from deepnuclei.labels import STRUCTURE_BY_NAME, STRUCTURES, dseg_tsv, remap_to_task, task_classes


def test_labels_are_unique_and_paired():
    labels = [s.label for s in STRUCTURES]
    assert labels == list(range(1, len(STRUCTURES) + 1))
    assert {s.nucleus for s in STRUCTURES if s.hemisphere == "L"} == {s.nucleus for s in STRUCTURES if s.hemisphere == "R"}


def test_seven_nuclei_task_merges_gpe_and_gpi_and_drops_stn():
    classes = task_classes("nuclei7")
    assert len(classes) == 14 and "GP_L" in classes
    dseg = np.array([STRUCTURE_BY_NAME[name].label for name in ("GPe_L", "GPi_L", "STN_R", "DN_R")])
    remapped = remap_to_task(dseg, "nuclei7")
    gp_left = classes.index("GP_L") + 1
    assert remapped.tolist() == [gp_left, gp_left, 0, classes.index("DN_R") + 1]


def test_stn_task_and_lookup_table():
    dseg = np.array([0, STRUCTURE_BY_NAME["STN_L"].label, STRUCTURE_BY_NAME["STN_R"].label, STRUCTURE_BY_NAME["SN_L"].label])
    assert remap_to_task(dseg, "stn").tolist() == [0, 1, 2, 0]
    assert dseg_tsv().count("\n") == len(STRUCTURES) + 1
