"""The workflow's plan (deepnuclei.plan) on BIDS trees laid out as real datasets are: sessions, T1-only
and SWI-only sessions, unlabelled participants, other suffixes and entities, filters; the roles, what
each method segments and scores, and the errors a dataset the workflow cannot serve stops with. The
trees hold empty files: the plan reads names only."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from deepnuclei.labels import dseg_tsv
from deepnuclei.plan import PlanError, make_plan, plan_files, split_subjects, write_plan_files
from deepnuclei.plan_files import AtlasCase, write_plan_file
from helpers import ROOT
from helpers.datasets import config_for, touch, write_session
from helpers.runs import merged
from helpers.api import planned_jobs, workflow_api



def test_sessions_inputs_and_roles_of_a_longitudinal_dataset(longitudinal, tmp_path):
    plan = make_plan(config_for(longitudinal, tmp_path))
    assert sorted(plan.sessions) == ["01_ses-post", "01_ses-pre", "02_ses-pre", "03_ses-pre", "04_ses-pre", "05_ses-pre"]
    first = plan.sessions["01_ses-pre"]
    assert first.participant == "01" and first.session == "pre" and first.echoes == [1, 2, 3]
    assert first.sidecars[0].endswith("sub-01_ses-pre_echo-1_part-phase_T2starw.json")
    assert first.label_source("T1w") == "dataset" and first.label_source("SWI") == "moved from T1w"
    # both sessions of participant 01 train: no participant sits on both sides of the split
    assert plan.roles == {"01_ses-post": "train", "01_ses-pre": "train", "02_ses-pre": "test", "03_ses-pre": "apply",
                          "04_ses-pre": "apply", "05_ses-pre": "apply"}
    assert plan.sessions["04_ses-pre"].spaces == ["T1w"] and plan.sessions["05_ses-pre"].spaces == ["SWI"]
    # SWI-grid models need SWI and T1; the atlas and T1-grid models only the T1
    assert plan.segmented("dbresunet") == ["01_ses-post", "01_ses-pre", "02_ses-pre", "03_ses-pre"]
    assert plan.segmented("linus-t1") == plan.segmented("atlas") == ["01_ses-post", "01_ses-pre", "02_ses-pre",
                                                                      "03_ses-pre", "04_ses-pre"]
    assert plan.output_spaces("linus-t1", "04_ses-pre") == ["T1w"]
    assert plan.output_spaces("linus-t1", "03_ses-pre") == ["T1w", "SWI"]
    # scored: the test session only; the atlas on the SWI grid, where its labels are the dataset's
    assert plan.scored("atlas") == plan.scored("dbresunet") == ["02_ses-pre"]
    assert plan.evaluation_space("atlas", "02_ses-pre") == "SWI"
    assert plan.scored("linus-t1") == ["02_ses-pre"]  # its T1-grid labels are moved from the SWI grid
    assert plan.reference_labels("02_ses-pre", "T1w").endswith("sub-02_ses-pre_space-T1w_desc-moved_dseg.nii.gz")
    training = plan.training_plan("dbresunet").cases
    assert [case.subject for case in training.train] == ["01_ses-post", "01_ses-pre"]
    assert training.train[0].labels.endswith("sub-01_ses-post_space-SWI_desc-model_dseg.nii.gz")
    record = plan.dataset_record()
    assert record.roles == {"train": 2, "validation": 0, "test": 1, "apply": 3}
    assert record.subjects["04_ses-pre"].segmented_by == ["atlas", "atlas-jlf", "linus-t1"]
    assert record.subjects["02_ses-pre"].scored_for == ["atlas", "atlas-jlf", "linus", "dbresunet", "linus-t1",
                                                        "dbresunet-rate1x1x1", "dbresunet-in-Chimap"]
    # one inference job per session and grid: the test session's also runs the ablation variants; 04 has no
    # registration (T1 only), so its labels stay on the T1 grid
    groups = {(group.space, group.registered, group.models): group.sessions for group in plan.inference_groups()}
    assert groups == {
        ("SWI", True, ("linus", "dbresunet")): ["01_ses-post", "01_ses-pre", "03_ses-pre"],
        ("SWI", True, ("linus", "dbresunet", "dbresunet-rate1x1x1", "dbresunet-in-Chimap")): ["02_ses-pre"],
        ("T1w", True, ("linus-t1",)): ["01_ses-post", "01_ses-pre", "02_ses-pre", "03_ses-pre"],
        ("T1w", False, ("linus-t1",)): ["04_ses-pre"]}
    # the rules' names follow this order, which the groups' contents set (the test session's group has more
    # models), not how many sessions each holds
    assert [len(group.models) for group in plan.inference_groups()] == [4, 2, 1, 1]
    inference = plan.inference_plan("linus-t1").for_session("04_ses-pre")
    assert inference.dseg.endswith("segmentations/linus-t1/sub-04/ses-pre/sub-04_ses-pre_space-T1w_dseg.nii.gz")
    assert inference.inputs == [plan.layout.preprocessed("04_ses-pre", "T1w.nii.gz", "T1w")]


def test_participant_filters_as_bids_apps_take_them(longitudinal, tmp_path):
    plan = make_plan(config_for(longitudinal, tmp_path, participant_label=["sub-01", "02", "03"],
                                exclude_participant_label="03"))
    assert {session.participant for session in plan.sessions.values()} == {"01", "02"}
    numbered = make_plan(config_for(longitudinal, tmp_path, participant_label=[1, "sub-02"]))  # --config reads 01 as 1
    assert {session.participant for session in numbered.sessions.values()} == {"01", "02"}
    with pytest.raises(PlanError, match=r"participant_label \['09'\]: no such participants"):
        make_plan(config_for(longitudinal, tmp_path, participant_label="09"))


def test_an_ambiguous_session_names_its_files_and_the_filter(tmp_path):
    bids = tmp_path / "bids"
    write_session(bids, "01", labels=("SWI",))
    write_session(bids, "02", labels=("SWI",))
    touch(bids / "sub-01" / "anat" / "sub-01_acq-fast_T1w.nii.gz")
    with pytest.raises(PlanError, match=r"sub-01: several T1w images \(sub-01_T1w.nii.gz, sub-01_acq-fast_T1w.nii.gz, "
                                        r"differing in acq\): choose one with the config's bids_filters"):
        make_plan(config_for(bids, tmp_path))
    plan = make_plan(config_for(bids, tmp_path, bids_filters={"T1w": {"acq": "fast"}}))
    assert plan.sessions["01"].t1.endswith("sub-01_acq-fast_T1w.nii.gz") and not plan.sessions["02"].has_t1
    plan = make_plan(config_for(bids, tmp_path, bids_filters={"T1w": {"acq": None}}))
    assert plan.sessions["01"].t1.endswith("sub-01_T1w.nii.gz")


def test_megre_echoes_and_the_errors_of_a_dataset_that_cannot_be_served(tmp_path):
    bids = tmp_path / "bids"
    write_session(bids, "01", labels=("SWI",), suffix="MEGRE")
    write_session(bids, "02", labels=("SWI",), suffix="MEGRE")
    plan = make_plan(config_for(bids, tmp_path))
    assert plan.sessions["01"].magnitudes[2].endswith("sub-01_echo-3_part-mag_MEGRE.nii.gz")
    (bids / "sub-02" / "anat" / "sub-02_echo-3_part-phase_MEGRE.nii.gz").unlink()
    with pytest.raises(PlanError, match=r"sub-02: SWI magnitude echoes \[1, 2, 3\] and phase echoes \[1, 2\] differ"):
        make_plan(config_for(bids, tmp_path))
    (bids / "sub-02" / "anat" / "sub-02_echo-3_part-mag_MEGRE.nii.gz").unlink()
    touch(bids / "derivatives" / "labels" / "sub-02" / "anat" / "sub-02_dseg.nii.gz")
    with pytest.raises(PlanError, match=r"sub-02_dseg.nii.gz: reference labels need a space entity"):
        make_plan(config_for(bids, tmp_path))


def test_a_dataset_without_labels_runs_its_atlas_but_cannot_train(tmp_path):
    bids = tmp_path / "bids"
    for participant in ("01", "02", "03"):
        write_session(bids, participant)
    with pytest.raises(PlanError, match=r"models.linus: no training session with reference labels.*--config 'methods"):
        make_plan(config_for(bids, tmp_path))
    plan = make_plan(config_for(bids, tmp_path, methods=["atlas"]))
    assert plan.evaluated_methods() == ["atlas"] and set(plan.roles.values()) == {"apply"}
    assert plan.segmented("atlas") == ["01", "02", "03"] and plan.overlap_cases("overlap") == []


def test_a_dataset_with_gp_as_one_label_cannot_serve_a_gpi_model(tmp_path):
    bids = tmp_path / "bids"
    for participant in ("01", "02"):
        write_session(bids, participant, labels=("SWI",))
    rows = ["index\tname", "1\tLeft-Caudate", "2\tRight-Caudate", "3\tLeft-Pallidum", "4\tRight-Pallidum"]
    (bids / "derivatives" / "labels" / "dseg.tsv").write_text("\n".join(rows) + "\n")
    gpi = {"gpi": {"architecture": "linus", "inputs": ["Chimap"], "task": "gpi"}}
    with pytest.raises(ValueError, match=r"task gpi needs GPi_L, GPi_R.*GP as one label"):
        make_plan(config_for(bids, tmp_path, models=gpi, methods=["gpi"]))


def test_plan_files_hold_the_case_lists_and_keep_their_time_when_unchanged(longitudinal, tmp_path):
    plan = make_plan(config_for(longitudinal, tmp_path))
    files = plan_files(plan)
    assert [case.subject for case in files["overlap"]] == ["02_ses-pre"] * 7
    assert {case.method for case in files["overlap"]} == set(plan.evaluated_methods())
    # one scoring job per session: its cases, each method's CSV in the session's folder
    assert plan.overlap_sessions("overlap") == {"02_ses-pre": files["overlap"]}
    assert {Path(case.out).parent for case in files["overlap"]} == {Path(plan.layout.overlap_dir("overlap", "02_ses-pre"))}
    assert files["atlas_jlf"] == [AtlasCase(plan.sessions[key].t1, plan.reference_labels(key, "T1w"))
                                  for key in ("01_ses-post", "01_ses-pre")]
    written = write_plan_files(plan, files)
    dataset = Path(written["dataset"])
    assert json.loads(dataset.read_text())["subjects"]["05_ses-pre"]["segmented_by"] == []
    before = dataset.stat().st_mtime_ns
    assert not write_plan_file(dataset, copy.deepcopy(files["dataset"]))
    assert dataset.stat().st_mtime_ns == before


def test_measures_cover_every_segmented_session_and_the_reference_of_labelled_ones(longitudinal, tmp_path):
    write_session(longitudinal, "06", "pre", t1=False, labels=("SWI",))  # labelled, SWI only: no method reads it
    plan = make_plan(config_for(longitudinal, tmp_path))
    cases = plan_files(plan)["measures"]
    pairs = [(case.method, case.subject) for case in cases]
    assert len(pairs) == len(set(pairs))
    for method in plan.evaluated_methods():  # unlabelled sessions too: every session the method segments
        assert [key for name, key in pairs if name == method] == plan.segmented(method)
    assert [key for name, key in pairs if name == "reference"] == ["01_ses-post", "01_ses-pre", "02_ses-pre", "06_ses-pre"]
    assert plan.segmented_sessions() == ["01_ses-post", "01_ses-pre", "02_ses-pre", "03_ses-pre", "04_ses-pre"]
    case = {pair: case for pair, case in zip(pairs, cases)}
    chi = plan.layout.qsm("02_ses-pre", "Chimap.nii.gz", plan.config["qsm"]["method"])
    labelled = case[("reference", "02_ses-pre")]  # labelled on the SWI grid, moved to the T1 grid
    assert labelled.swi_labels.endswith("sub-02_ses-pre_space-SWI_dseg.nii.gz") and labelled.qsm == chi
    assert labelled.t1_labels.endswith("sub-02_ses-pre_space-T1w_desc-moved_dseg.nii.gz")
    assert labelled.t1 == plan.sessions["02_ses-pre"].t1 and labelled.lookup == plan.layout.labels_lookup()
    assert (labelled.participant, labelled.session) == ("02", "pre")
    assert labelled.out.endswith("measures/sub-02/ses-pre/sub-02_ses-pre_desc-reference_nuclei.tsv")
    swi_only = case[("reference", "06_ses-pre")]
    assert swi_only.t1_labels is None and swi_only.t1 is None and swi_only.qsm is not None
    t1_only = case[("atlas", "04_ses-pre")]  # a T1 only: volumes, no susceptibility
    assert t1_only.t1_labels == plan.layout.segmentation("atlas", "04_ses-pre", "T1w")
    assert t1_only.swi_labels is None and t1_only.qsm is None
    assert t1_only.lookup == plan.layout.segmentations_lookup() and t1_only.task is None
    model = case[("dbresunet", "03_ses-pre")]
    assert model.task == "nuclei7" and model.swi_labels == plan.layout.segmentation("dbresunet", "03_ses-pre", "SWI")
    assert case[("atlas-jlf", "03_ses-pre")].lookup == plan.layout.labels_lookup()  # its atlases' structures
    models = {**config_for(longitudinal, tmp_path)["models"], "reference": {"architecture": "linus", "inputs": ["T1w"],
                                                                            "task": "stn"}}
    with pytest.raises(PlanError, match="may not be named 'reference'"):
        plan_files(make_plan(config_for(longitudinal, tmp_path, models=models)))


def test_the_demo_plan_measures_its_segmented_subjects_and_every_labelled_subjects_reference(tmp_path):
    config = merged(merged(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()),
                           yaml.safe_load((ROOT / "tests" / "config" / "tiny.yaml").read_text())),
                    {"results_dir": str(tmp_path / "results")})
    plan = make_plan(config)
    pairs = {(case.method, case.subject) for case in plan.measures_cases()}
    # the demo segments its test subject only; both subjects are labelled; the hires cohort is not measured
    assert pairs == {("reference", "01"), ("reference", "02")} | {(method, "02") for method in plan.evaluated_methods()}
    assert plan.segmented_sessions() == ["02"]


def test_measures_cases_hold_the_interval_samples_that_flip_and_qsm_intervals_ask_for(tmp_path):
    """With inference.flip, a model's measures case reads the passes its inference job writes (which that job's
    plan names), on the QSM maps of `qsm.method` then `qsm.intervals`; the groups of the shipped factors."""
    config = merged(merged(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()),
                           yaml.safe_load((ROOT / "tests" / "config" / "tiny.yaml").read_text())),
                    {"results_dir": str(tmp_path / "results"), "inference": {"flip": True},
                     "qsm": {"intervals": ["tkd", "sharptv"]}})
    plan = make_plan(config)
    layout, cases = plan.layout, {case.method: case for case in plan.measures_sessions()["02"]}
    model = next(model for model in plan.main_models if plan.native_space(model) == "SWI")
    passes = {name: layout.segmentation_pass(model, "02", "SWI", name) for name in ("direct", "mirrored")}
    assert cases[model].swi_samples == {"averaged": layout.segmentation(model, "02", "SWI"), **passes}
    assert plan.inference_plan(model).for_session("02").passes == passes
    assert passes["direct"].endswith("sub-02_space-SWI_desc-direct_dseg.nii.gz")
    assert cases[model].qsm_samples == {method: layout.qsm("02", "Chimap.nii.gz", method)
                                        for method in ("sharptv", "tkd")}
    assert cases[model].interval_group == "network" and cases["atlas"].interval_group == "atlas"
    assert cases["reference"].interval_group == "reference" and cases["atlas-jlf"].interval_group is None
    assert cases["atlas"].swi_samples == {"averaged": cases["atlas"].swi_labels}
    without = make_plan(merged(config, {"inference": {"flip": False}, "qsm": {"intervals": []}}))
    case = next(case for case in without.measures_sessions()["02"] if case.method == model)
    assert list(case.swi_samples) == ["averaged"] and list(case.qsm_samples) == ["sharptv"]
    assert without.inference_plan(model).passes == {}
    with pytest.raises(PlanError, match="qsm.intervals: qsm2 not in qsm.methods"):
        make_plan(merged(config, {"qsm": {"intervals": ["qsm2"]}})).measures_cases()


def test_splits_are_consecutive_in_subject_order() -> None:
    subjects = [f"{i:02d}" for i in range(1, 9)]
    assert split_subjects(subjects, 5, 1, 2) == {"train": subjects[:5], "validation": ["06"], "test": ["07", "08"]}
    assert split_subjects(subjects, 2, 1)["test"] == subjects[3:]  # test: the rest
    with pytest.raises(ValueError, match="splits"):
        split_subjects(subjects, 5, 2, 2)


def test_a_short_test_split_is_said_not_silent(tmp_path):
    """config/paper.yaml's 20 / 4 / 19 on the 41 participants of the DB-ResUNet paper's introduction leaves 17
    to test: the plan says so (it used to test 17 without a word)."""
    bids = tmp_path / "bids"
    for number in range(1, 42):
        write_session(bids, f"{number:02d}", labels=("SWI",))
    plan = make_plan(config_for(bids, tmp_path, splits={"train": 20, "validation": 4, "test": 19}))
    assert len(plan.role_sessions("test")) == 17
    assert any("splits.test asks for 19 test participants" in note and "tested on 17" in note for note in plan.notes)


def test_splits_test_all_tests_every_labelled_participant_without_a_note(tmp_path):
    """config/apply.yaml's `splits.test: all` (it asked for 100000, and every apply run noted that it tested fewer)."""
    bids = tmp_path / "bids"
    for participant in ("01", "02", "03"):
        write_session(bids, participant, labels=("SWI",))
    write_session(bids, "04")
    splits = yaml.safe_load((ROOT / "config" / "apply.yaml").read_text())["splits"]
    assert splits["test"] == "all"
    plan = make_plan(config_for(bids, tmp_path, splits=splits, methods=["atlas"]))
    assert plan.role_sessions("test") == ["01", "02", "03"] and plan.roles["04"] == "apply"
    assert plan.notes == []


def test_a_participant_listed_without_images_is_noted_in_one_line(tmp_path):
    bids = tmp_path / "bids"
    for participant in ("01", "02"):
        write_session(bids, participant, labels=("SWI",))
    (bids / "sub-04" / "anat").mkdir(parents=True)  # a folder without images
    tsv = bids / "participants.tsv"
    tsv.write_text("participant_id\tage\n" + "".join(f"sub-0{number}\t{20 + number}\n" for number in range(1, 5)))
    plan = make_plan(config_for(bids, tmp_path))
    assert plan.notes == [f"sub-0{number}: listed in {tsv} but has no T1w or SWI images, left out" for number in (3, 4)]
    assert plan.dataset_record().notes == plan.notes
    excluded = make_plan(config_for(bids, tmp_path, exclude_participant_label=["03"]))  # the filters apply
    assert excluded.notes == [f"sub-04: listed in {tsv} but has no T1w or SWI images, left out"]


@pytest.mark.slow  # plans 1,000 sessions: minutes
def test_a_cohort_of_1000_sessions_plans_with_short_commands(tmp_path):
    """config/paper.yaml on 500 participants with 2 sessions each (the paper's 43 labelled): every session
    is segmented by every configured method and no job's shell command carries a case list (8 KB at most)."""
    bids = tmp_path / "bids"
    for number in range(1, 501):
        for session in ("1", "2"):
            write_session(bids, f"{number:03d}", session, echoes=4, labels=("SWI",) if number <= 43 else ())
    (bids / "derivatives" / "labels" / "dseg.tsv").write_text(dseg_tsv())
    dataset = tmp_path / "dataset.yaml"
    dataset.write_text(yaml.safe_dump({"bids_dir": str(bids)}))
    with workflow_api(tmp_path, (ROOT / "config" / "paper.yaml", dataset)) as api:
        jobs = planned_jobs(api, ["all"])
        commands = {job: job.shellcmd or "" for job in jobs}
    longest = max(commands, key=lambda job: len(commands[job]))
    assert len(commands[longest]) < 8192, (longest.rule.name, len(commands[longest]))
    counts = Counter(job.rule.name for job in jobs)
    assert counts["validate_inputs"] == counts["qsm"] == counts["atlas_single"] == 1000
    models = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())["models"]
    # one inference job per session and grid runs all of its models, on both grids
    assert {space: sum(count for rule, count in counts.items() if rule.startswith(f"infer_{space}"))
            for space in ("swi", "t1w")} == {"swi": 1000, "t1w": 1000}
    segmented = Counter(path.split("/segmentations/")[1].split("/")[0] for job in jobs if job.rule.name.startswith("infer_") for path in job.output
                        if path.endswith("_dseg.nii.gz"))
    assert {model: segmented[model] for model in models} == {model: 2000 for model in models}
    assert counts["overlap_session"] == 38 and counts["train"] >= len(models)  # one scoring job per test session
    # measures and QC picture: one job per session for every method (and the reference where labelled), merged once
    assert counts["measures_session"] == 1000 and counts["measures"] == 1
    record = json.loads((tmp_path / "results" / "plan" / "dataset.json").read_text())
    assert record["sessions"] == 1000 and record["roles"] == {"train": 40, "validation": 8, "test": 38, "apply": 914}
