"""Label table, task remapping, and a dataset's own numbering mapped onto the package's by name."""

import numpy as np
import pytest

from deepnuclei.cli import main
from deepnuclei.io import InputError, read_volume, save_volume
from deepnuclei.labels import (
    ALL_STRUCTURES, STRUCTURE_BY_NAME, STRUCTURES, TASKS, check_task, dataset_mapping, dataset_structures, dseg_tsv,
    match_structure, missing_for_task, read_dseg_names, read_dseg_tsv, relabel, relabel_file, remap_to_task,
    task_classes,
)
from helpers.labels import MERGED, SEPARATE, merge_gp, package_map

AFFINE = np.diag([0.8, 0.8, 2.0, 1.0])


# A dataset numbering its labels its own way: FreeSurfer-like names and values, GPe/GPi apart
SEPARATE_ROWS = {
    "CN_L": (11, "Left-Caudate"), "CN_R": (50, "Right-Caudate"), "PUT_L": (12, "Left-Putamen"),
    "PUT_R": (51, "Right-Putamen"), "THA_L": (10, "Left-Thalamus-Proper"), "THA_R": (49, "Right-Thalamus"),
    "GPe_L": (3, "GPe_L"), "GPe_R": (4, "GPe_R"), "GPi_L": (1, "left globus pallidus internus"),
    "GPi_R": (2, "Globus pallidus interna right"), "SN_L": (7, "L substantia nigra"), "SN_R": (8, "R SN"),
    "RN_L": (5, "Red_N_L"), "RN_R": (6, "Red_N_R"), "DN_L": (20, "Dentate_L"), "DN_R": (21, "dentate nucleus right"),
    "STN_L": (30, "lh.STN"), "STN_R": (31, "rh.STN"),
}
# ...and one with GP as one label (AAL-like names), in another order
MERGED_ROWS = {
    "CN_L": (1, "Caudate_L"), "CN_R": (2, "Caudate_R"), "GP_L": (3, "Pallidum_L"), "GP_R": (4, "Pallidum_R"),
    "PUT_L": (5, "Putamen_L"), "PUT_R": (6, "Putamen_R"), "THA_L": (7, "Thalamus_L"), "THA_R": (8, "Thalamus_R"),
    "SN_L": (9, "SN_L"), "SN_R": (10, "SN_R"), "RN_L": (11, "Red_N_L"), "RN_R": (12, "Red_N_R"),
    "DN_L": (13, "Dentate_L"), "DN_R": (14, "Dentate_R"), "STN_L": (15, "STN_L"), "STN_R": (16, "STN_R"),
}


def dataset_files(tmp_path, rows: dict[str, tuple[int, str]], labels: np.ndarray) -> tuple:
    """A dataset's label map (the package map renumbered by `rows`: structure -> value, name; GP takes GPe
    and GPi where it is listed) and dseg.tsv."""
    table = np.zeros(len(ALL_STRUCTURES) + 1, np.uint8)
    for structure, (value, _) in rows.items():
        parts = [f"{part}_{structure[-1]}" for part in ("GPe", "GPi")] if structure.startswith("GP_") else []
        table[[STRUCTURE_BY_NAME[name].label for name in (structure, *parts)]] = value
    lookup = tmp_path / "dseg.tsv"
    lookup.write_text("index\tname\n" + "".join(f"{value}\t{name}\n" for value, name in rows.values()))
    return save_volume(tmp_path / "dataset_dseg.nii.gz", table[labels], AFFINE, np.uint8), lookup


def test_labels_are_unique_and_paired():
    assert [s.label for s in ALL_STRUCTURES] == list(range(1, 21))
    assert [s.name for s in ALL_STRUCTURES[-2:]] == ["GP_L", "GP_R"] and len(STRUCTURES) == 18
    assert {s.nucleus for s in STRUCTURES if s.hemisphere == "L"} == {s.nucleus for s in STRUCTURES if s.hemisphere == "R"}


def test_seven_nuclei_task_merges_gpe_gpi_and_gp_and_drops_stn():
    classes = task_classes("nuclei7")
    assert len(classes) == 14 and "GP_L" in classes
    dseg = np.array([STRUCTURE_BY_NAME[name].label for name in ("GPe_L", "GPi_L", "GP_L", "STN_R", "DN_R")])
    remapped = remap_to_task(dseg, "nuclei7")
    gp_left = classes.index("GP_L") + 1
    assert remapped.tolist() == [gp_left, gp_left, gp_left, 0, classes.index("DN_R") + 1]
    assert TASKS["nuclei7"]["GP_L"][0] == "GP_L"  # a model writes its GP class as GP


def test_stn_task_and_lookup_table():
    dseg = np.array([0, STRUCTURE_BY_NAME["STN_L"].label, STRUCTURE_BY_NAME["STN_R"].label, STRUCTURE_BY_NAME["SN_L"].label])
    assert remap_to_task(dseg, "stn").tolist() == [0, 1, 2, 0]
    assert dseg_tsv().count("\n") == len(STRUCTURES) + 1
    assert dseg_tsv(["GP_R", "CN_L"]).splitlines()[1:] == ["1\tleft caudate nucleus\tCN_L\tL",
                                                           "20\tright globus pallidus\tGP_R\tR"]


@pytest.mark.parametrize("name, structure", [
    # the package's own abbreviations and full names
    *((s.name, s.name) for s in ALL_STRUCTURES), *((s.full_name, s.name) for s in ALL_STRUCTURES),
    ("cn_l", "CN_L"), ("GPI R", "GPi_R"),
    # FreeSurfer
    ("Left-Caudate", "CN_L"), ("Right-Putamen", "PUT_R"), ("Left-Pallidum", "GP_L"),
    ("Left-Thalamus-Proper", "THA_L"), ("Right-Thalamus", "THA_R"),
    # AAL3
    ("Caudate_L", "CN_L"), ("Pallidum_R", "GP_R"), ("Thalamus_L", "THA_L"), ("Red_N_L", "RN_L"),
    ("SN_pc_L", "SN_L"), ("SN_pr_R", "SN_R"),
    # HCPex- and CIT168-like, with sides
    ("L_Caudate", "CN_L"), ("R_Pallidum", "GP_R"), ("STN_L", "STN_L"), ("GPe_R", "GPe_R"), ("SNc_L", "SN_L"),
    ("SNr_R", "SN_R"), ("Ca_L", "CN_L"), ("Pu_R", "PUT_R"), ("RN R", "RN_R"),
    # prose and other spellings
    ("caudate left", "CN_L"), ("lh caudate nucleus", "CN_L"), ("rh.putamen", "PUT_R"), ("Caudate (L)", "CN_L"),
    ("left external globus pallidus", "GPe_L"), ("Lateral_Globus_Pallidus_R", "GPe_R"),
    ("globus pallidus pars interna, left", "GPi_L"), ("GP-i_R", "GPi_R"), ("Left substantia nigra pars compacta", "SN_L"),
    ("right nucleus ruber", "RN_R"), ("Dentate nucleus L", "DN_L"), ("Left Subthalamic Nucleus", "STN_L"),
])
def test_real_world_names_match_their_structure(name, structure):
    assert match_structure(name) == structure


@pytest.mark.parametrize("name", ["STN", "Caudate", "Left", "L", "Left-VentralDC", "Thal_AV_L", "ctx-lh-insula",
                                  "Left-Cerebellum-Cortex", "VTA_L", "left caudate right", ""])
def test_names_without_a_side_or_of_other_structures_match_nothing(name):
    assert match_structure(name) is None


def test_an_unknown_name_fails_naming_the_file_the_name_and_the_expected_names(tmp_path):
    lookup = tmp_path / "dseg.tsv"
    lookup.write_text("index\tname\tabbreviation\n11\tLeft-Caudate\t\n28\tLeft-VentralDC\t\n")
    with pytest.raises(InputError, match=r"dseg\.tsv: label 28 'Left-VentralDC' names no structure deepnuclei "
                                         r"knows: expected one of CN_L, CN_R, .*GP_R .*labels\.ignore$"):
        dataset_mapping(read_dseg_names(lookup), lookup)
    assert dataset_mapping(read_dseg_names(lookup), lookup, ignore=["left ventraldc"]) == {0: 0, 11: 1, 28: 0}
    assert read_dseg_tsv(lookup) == {11: "Left-Caudate", 28: "Left-VentralDC"}  # an empty abbreviation: the name


def test_a_label_is_matched_by_its_abbreviation_or_its_name(tmp_path):
    lookup = tmp_path / "dseg.tsv"
    lookup.write_text("index\tname\tabbreviation\n1\tleft caudate nucleus\tLCd\n2\tNucleus 2\tPUT_R\n")
    assert dataset_mapping(read_dseg_names(lookup), lookup) == {0: 0, 1: 1, 2: STRUCTURE_BY_NAME["PUT_R"].label}
    lookup.write_text("index\tname\tabbreviation\n1\tleft caudate nucleus\tPUT_L\n")
    with pytest.raises(InputError, match="label 1: its names PUT_L / left caudate nucleus name different structures"):
        dataset_mapping(read_dseg_names(lookup), lookup)


def test_parts_of_a_structure_merge_but_a_name_listed_twice_or_gp_both_ways_fails():
    sn_left = STRUCTURE_BY_NAME["SN_L"].label
    assert dataset_mapping({4: "SN_pc_L", 5: "SN_pr_L"}, "dseg.tsv") == {0: 0, 4: sn_left, 5: sn_left}
    twice = r"dseg\.tsv: 'Left-Caudate' \(value 11\) and 'left caudate' \(value 12\) are one name listed twice"
    with pytest.raises(InputError, match=twice):
        dataset_mapping({11: "Left-Caudate", 12: "left caudate"}, "dseg.tsv")
    with pytest.raises(InputError, match=r"GP_L is labelled both as one label and as its parts \(GPe_L\)"):
        dataset_mapping({1: "Left-Pallidum", 2: "GPe_L", 3: "GPe_R"}, "dseg.tsv")


def test_relabel_maps_every_value_and_names_an_unknown_one():
    data = np.array([[0, 7, 9], [9, 7, 0]])
    assert relabel(data, {7: 1, 9: 19}).tolist() == [[0, 1, 19], [19, 1, 0]]
    assert relabel(data, {7: 1, 9: 19}).dtype == np.uint8
    with pytest.raises(ValueError, match=r"label values \[9\] are not in the mapping"):
        relabel(data, {7: 1})


@pytest.mark.parametrize("rows, expected", [(SEPARATE_ROWS, package_map), (MERGED_ROWS, lambda: merge_gp(package_map()))],
                         ids=["GP apart", "GP merged"])
def test_a_dataset_numbered_its_own_way_comes_back_in_the_package_numbering(tmp_path, rows, expected):
    labels, lookup = dataset_files(tmp_path, rows, package_map())
    structures = relabel_file(labels, lookup, tmp_path / "out.nii.gz", out_lookup=tmp_path / "out.tsv")
    data, affine = read_volume(tmp_path / "out.nii.gz", dtype=np.uint8)
    np.testing.assert_array_equal(data, expected())
    np.testing.assert_allclose(affine, AFFINE)
    assert set(structures) == set(rows)
    assert read_dseg_tsv(tmp_path / "out.tsv") == {STRUCTURE_BY_NAME[name].label: name for name in structures}


def test_relabel_file_names_values_its_lookup_lacks(tmp_path):
    labels, lookup = dataset_files(tmp_path, MERGED_ROWS, package_map())
    lookup.write_text("".join(line + "\n" for line in lookup.read_text().splitlines() if "Dentate" not in line))
    with pytest.raises(InputError, match=r"dataset_dseg\.nii\.gz: label values \[13, 14\] are not in .*dseg\.tsv$"):
        relabel_file(labels, lookup, tmp_path / "out.nii.gz")
    # without a dseg.tsv the map is in the package numbering: only its values are checked
    save_volume(tmp_path / "package.nii.gz", merge_gp(package_map()), AFFINE, np.uint8)
    assert relabel_file(tmp_path / "package.nii.gz", None, tmp_path / "out.nii.gz") == MERGED
    save_volume(tmp_path / "package.nii.gz", np.full((2, 2, 2), 21), AFFINE, np.uint8)
    with pytest.raises(InputError, match=r"package\.nii\.gz: label values \[21\] are not in the package's numbering"):
        relabel_file(tmp_path / "package.nii.gz", None, tmp_path / "out.nii.gz")


def test_what_a_task_needs_and_a_clear_error_where_a_dataset_lacks_it():
    assert missing_for_task("nuclei7", SEPARATE) == missing_for_task("nuclei7", MERGED) == []
    assert missing_for_task("nuclei7", [name for name in SEPARATE if name != "GPi_R"]) == ["GP_R"]
    assert missing_for_task("stn", MERGED) == [] and missing_for_task("gpi", SEPARATE) == []
    assert missing_for_task("gpi", MERGED) == ["GPi_L", "GPi_R"]
    check_task("gpi", SEPARATE, "dseg.tsv")
    with pytest.raises(InputError, match=r"^dseg\.tsv: task gpi needs GPi_L, GPi_R, which it does not label; it has "
                                         r"GP as one label \(GP_L, GP_R\): GPe/GPi tasks are unavailable"):
        check_task("gpi", MERGED, "dseg.tsv")
    with pytest.raises(InputError, match=r"task stn needs STN_L, STN_R, which it does not label$"):
        check_task("stn", dataset_structures({1: 1, 2: 2}), "dseg.tsv")


def test_cli_relabel_round_trip(tmp_path):
    rows = {name: row for name, row in MERGED_ROWS.items() if not name.startswith("STN")}  # a dataset without STN
    labels, lookup = dataset_files(tmp_path, rows, package_map())
    lookup.write_text(lookup.read_text() + "28\tLeft-VentralDC\n")
    out, out_lookup = tmp_path / "out" / "dseg.nii.gz", tmp_path / "out" / "dseg.tsv"
    command = ["relabel", "--labels", str(labels), "--lookup", str(lookup), "--out", str(out), "--out-lookup", str(out_lookup)]
    assert main(command) == 2  # Left-VentralDC is no structure deepnuclei knows
    assert main([*command, "--ignore", "Left-VentralDC"]) == 0
    expected = merge_gp(package_map())
    expected[np.isin(expected, [STRUCTURE_BY_NAME["STN_L"].label, STRUCTURE_BY_NAME["STN_R"].label])] = 0
    np.testing.assert_array_equal(read_volume(out, dtype=np.uint8)[0], expected)
    assert list(read_dseg_tsv(out_lookup).values()) == [name for name in MERGED if not name.startswith("STN")]
