"""Evaluation tables and figures from overlap tables with known values, and the papers' numbers."""

import json

import numpy as np
import pandas as pd
import pytest

from deepnuclei.evaluate import scored_structures
from deepnuclei.headline import headline
from deepnuclei.figures import (
    bland_altman, dice_boxplot, paired_values, regression, save_figure, scatter_panels, write_evaluation_figures,
)
from deepnuclei.models import get_spec, parameters_of
from deepnuclei.plan_files import TimingCase
from deepnuclei.tables import (
    demographics_table, dice_table, efficiency_table, localization_table, localization_voxels, method_summary,
    paper_demographics, paper_localization, paper_results, read_participants, stn_table, timing_table,
    write_evaluation_tables, write_table,
)


def overlap_rows(subjects=("01", "02", "03"), methods=("atlas", "net"), seed=0) -> pd.DataFrame:
    """An overlap table of random scores on every scored structure."""
    rng = np.random.default_rng(seed)
    rows = []
    for method in methods:
        for subject in subjects:
            for structure in scored_structures():
                reference_volume, reference_chi = rng.uniform(100, 5000), rng.uniform(20, 200)
                rows.append({"subject": subject, "method": method, "structure": structure,
                             **{metric: rng.uniform(0.4, 0.9) for metric in ("dice", "precision", "recall")},
                             "volume_mm3": reference_volume * rng.normal(1, 0.1),
                             "reference_volume_mm3": reference_volume,
                             "hd95_mm": rng.uniform(0, 5), "mean_surface_distance_mm": rng.uniform(0, 2),
                             "com_error_mm": rng.uniform(0, 3),
                             "susceptibility_ppb": reference_chi + rng.normal(0, 10),
                             "reference_susceptibility_ppb": reference_chi})
    return pd.DataFrame(rows)


def test_paper_numbers_are_transcribed_consistently():
    results = paper_results().set_index(["source", "method", "condition", "structure", "metric"])["value"]
    assert results[("DB-ResUNet Table I", "DB-ResUNet", "QSM+T1 WI", "DN", "dice")] == 0.774
    assert results[("LiNUS Table II", "LiNUS", "", "STN", "parameters")] == 222698
    table_i = results.xs(("DB-ResUNet Table I", "DB-ResUNet"), level=("source", "method")).droplevel("condition")
    for source, condition in (("DB-ResUNet Table III", "global branch downsampled 2x"),
                              ("DB-ResUNet Table IV", "input QSM+T1 WI")):  # the same model, reported thrice
        again = results.xs((source, "DB-ResUNet", condition), level=("source", "method", "condition"))
        assert again.sort_index().equals(table_i.sort_index())
    cases = paper_localization()
    offsets = cases[[f"predicted_{a}" for a in "ijk"]].to_numpy() - cases[[f"reference_{a}" for a in "ijk"]].to_numpy()
    assert cases["distance_mm"].to_numpy() == pytest.approx(np.linalg.norm(offsets, axis=1), abs=0.005)  # 1 mm grid
    assert cases["distance_mm"].mean() == pytest.approx(1.699, abs=0.0005)  # the text's mean over both sides


def test_paper_demographics_are_transcribed_consistently():
    """LiNUS Table I: its printed "Variance" row is each column's SD (education: SD 3.02, variance 9.2), and its
    means and SDs match the 14 patients it lists but for age (55.3 +- 7.0 from the listed ages, printed 54.9 +-
    7.7), disease duration (9.6, printed 9.7) and UPDRS-III (31.7, printed 32.3)."""
    table = paper_demographics().set_index("participant_id")
    patients = table.loc[[f"DBS{number:02d}" for number in range(1, 15)]].drop(columns=["source", "sex"]).astype(float)
    printed = table.loc[["mean", "sd"]].drop(columns=["source", "sex"]).astype(float)
    differing = {"age": (55.29, 6.99), "disease_duration_years": (9.57, 4.01), "updrs_iii": (31.71, 13.24)}
    for column in patients:
        mean, sd = patients[column].mean(), patients[column].std()
        if column in differing:
            assert (mean, sd) == pytest.approx(differing[column], abs=0.005), column
        else:
            assert (mean, sd) == pytest.approx(tuple(printed[column]), abs=0.05), column
    assert (table["sex"] == "F").sum() == 4 and (table["sex"] == "M").sum() == 10


def test_demographics_per_cohort_beside_the_papers_table_i(tmp_path):
    """Our participants per cohort from participants.tsv (ages, sex spelled either way, groups, other numeric
    columns; "n/a" missing; a participant it does not list counts only in `participants`), then TT14's row."""
    tsv = tmp_path / "participants.tsv"
    tsv.write_text("participant_id\tage\tsex\tgroup\tmmse\n"
                   "sub-01\t50\tM\tPD\t27\nsub-02\t60\tfemale\tPD\tn/a\nsub-03\t70\tmale\tHC\t29\n"
                   "sub-hr01\t40\tF\tHC\t30\n")
    table = demographics_table(read_participants(tsv), {"main": ["01", "02", "03", "04"], "hires": ["hr01"]})
    table = table.set_index("dataset")
    main = table.loc["ours: main"]
    assert (main["participants"], main["listed"]) == (4, 3)
    assert (main["age_mean"], main["age_sd"], main["age_min"], main["age_max"]) == pytest.approx((60, 10, 50, 70))
    assert (main["sex_M"], main["sex_F"], main["group_PD"], main["group_HC"]) == (2, 1, 2, 1)
    assert (main["mmse_mean"], main["mmse_sd"]) == pytest.approx((28.0, np.sqrt(2.0)))
    assert (table.loc["ours: hires", "age_mean"], table.loc["ours: hires", "sex_F"]) == (40, 1)
    paper = table.loc["paper: TT14"]
    assert (paper["participants"], paper["age_mean"], paper["age_sd"]) == (14, 54.9, 7.7)
    assert (paper["sex_M"], paper["sex_F"], paper["age_min"], paper["age_max"]) == (10, 4, 46, 67)
    assert (paper["mmse_mean"], paper["pdq39_sd"]) == (27.7, 26.7)
    assert list(table.columns[:6]) == ["participants", "listed", "age_mean", "age_sd", "age_min", "age_max"]
    no_file = demographics_table(read_participants(tmp_path / "absent.tsv"), {"main": ["01", "02"]}).set_index("dataset")
    assert (no_file.loc["ours: main", "participants"], no_file.loc["ours: main", "listed"]) == (2, 0)


def test_dice_table_averages_sides_per_subject_and_adds_the_papers_rows():
    overlap = overlap_rows()
    table = dice_table(overlap).set_index("method")
    expected = overlap[overlap["structure"].isin(["GP_L", "GP_R"]) & (overlap["method"] == "net")]["dice"].mean()
    assert table.loc["net", "GP"] == pytest.approx(expected)
    nuclei = ["CN", "GP", "PUT", "THA", "SN", "RN", "DN"]
    assert list(table.columns) == [*(c for n in nuclei for c in (n, f"{n}_ci95")), "subjects", "misses",
                                   "paper_method", "condition"]
    per_subject = overlap[overlap["structure"].isin(["GP_L", "GP_R"]) & (overlap["method"] == "net")].groupby(
        "subject")["dice"].mean()
    assert table.loc["net", "GP_ci95"] == pytest.approx(4.302653 * per_subject.std() / np.sqrt(3), rel=1e-5)
    assert table.loc["paper: MRICloud (QSM+T1 WI)", "SN"] == 0.520
    stn = dice_table(overlap, ("STN",), "LiNUS Table II").set_index("method")["STN"]
    assert stn["paper: LiNUS"] == 0.6790 and stn["paper: UNet"] == 0.5501


def test_a_missed_structure_counts_as_dice_zero_and_is_shown():
    """A model that misses RN_L on one subject: its Dice there is 0 in the mean, precision 0, and the table
    shows one miss (the centre-of-mass means are over the structures found, beside the misses)."""
    overlap = overlap_rows(methods=("net",)).assign(missed=False)
    miss = (overlap["subject"] == "01") & (overlap["structure"] == "RN_L")
    overlap.loc[miss, ["dice", "precision", "recall", "missed"]] = [0.0, 0.0, 0.0, True]
    overlap.loc[miss, "com_error_mm"] = np.nan
    table = dice_table(overlap).set_index("method")
    rn = overlap[overlap["structure"].isin(["RN_L", "RN_R"])].groupby("subject")["dice"].mean()
    assert table.loc["net", "RN"] == pytest.approx(rn.mean()) and table.loc["net", "misses"] == 1
    summary = method_summary(overlap).set_index(["structure", "method"])
    assert summary.loc[("RN_L", "net"), "misses"] == 1 and summary.loc[("RN_R", "net"), "misses"] == 0
    localization = localization_table(overlap, ("RN_L",)).set_index(["method", "subject"])
    assert localization.loc[("net", "misses"), "RN_L"] == 1
    found = overlap[(overlap["structure"] == "RN_L") & ~overlap["missed"]]["com_error_mm"]
    assert localization.loc[("net", "mean"), "RN_L"] == pytest.approx(found.mean())


def test_our_rows_stand_beside_the_papers():
    """Each paper row follows ours for the same method and condition (architecture, inputs, rate, ...);
    an atlas baseline stands beside the papers' registration methods, a cleaned-up variant beside none."""
    models = {"db": {"architecture": "dbresunet", "inputs": ["T1w", "Chimap"], "task": "nuclei7"},
              "db-qsm": {"architecture": "dbresunet", "inputs": ["Chimap"], "task": "nuclei7"},
              "db-1": {"architecture": "dbresunet", "inputs": ["T1w", "Chimap"], "task": "nuclei7",
                       "options": {"rate": [1, 1, 1]}},
              "u": {"architecture": "unet3d", "inputs": ["T1w", "Chimap"], "task": "nuclei7"}}
    overlap = overlap_rows(methods=("atlas", "db", "db-1", "db-qsm", "u", "db+lcc"))
    methods = list(dice_table(overlap, models=models)["method"])
    # the rate variant has the paper's inputs but is not Table I's model: it stands beside no row there
    assert methods == ["u", "paper: 3D-UNet (QSM+T1 WI)", "paper: ResUNet (QSM+T1 WI)", "db",
                       "paper: DB-ResUNet (QSM+T1 WI)", "atlas", "paper: MRICloud (QSM+T1 WI)", "db+lcc", "db-1",
                       "db-qsm"]
    inputs = dice_table(overlap, source="DB-ResUNet Table IV", models=models).set_index("method")
    assert inputs.loc["db-qsm", "condition"] == "input QSM" and inputs.loc["db", "condition"] == "input QSM+T1 WI"
    rates = {"db-1": {**models["db"], "options": {"rate": [1, 1, 1]}}, "db": models["db"]}
    rate = dice_table(overlap_rows(methods=("db", "db-1")), source="DB-ResUNet Table III", models=rates)
    assert list(rate["method"])[:4] == ["db-1", "paper: DB-ResUNet (global branch downsampled 1x)", "db",
                                        "paper: DB-ResUNet (global branch downsampled 2x)"]


def test_localization_in_the_papers_voxel_form():
    """LiNUS Tables IV and V: centres as voxel indices of the T1 grid, for the models scored there only, the
    distance between the rounded indices (the paper's convention, scored by evaluate), and per method the
    mean over both sides: the paper's 28 cases give the text's 1.699 mm."""
    overlap = overlap_rows(subjects=("01", "02"), methods=("t1net", "swinet"))
    overlap = overlap.assign(space=np.where(overlap["method"] == "t1net", "T1w", "SWI"),
                             **{f"com_{a}": 10.4 for a in "ijk"}, **{f"reference_com_{a}": 11.6 for a in "ijk"},
                             com_index_error_mm=np.sqrt(12.0))  # (10, 10, 10) to (12, 12, 12) on 1 mm voxels
    overlap.loc[(overlap["subject"] == "02") & (overlap["structure"] == "STN_R"), "com_index_error_mm"] = 0.0
    table = localization_voxels(overlap)
    ours = table[table["method"] == "t1net"].set_index(["structure", "subject"])
    assert set(table["method"]) == {"t1net", "paper: LiNUS"}
    assert ours.loc[("STN_L", "01"), ["predicted_i", "reference_k"]].tolist() == [10.0, 12.0]
    assert ours.loc[("STN_L", "01"), "distance_mm"] == pytest.approx(np.sqrt(12.0))
    assert ours.loc[("STN_L+STN_R", "mean"), "distance_mm"] == pytest.approx(3 * np.sqrt(12.0) / 4)
    theirs = table[table["method"] == "paper: LiNUS"]
    assert len(theirs) == len(paper_localization()) + 1
    assert theirs.iloc[-1]["structure"] == "STN_L+STN_R"
    assert theirs.iloc[-1]["distance_mm"] == pytest.approx(1.699, abs=0.0005)
    assert list(table["method"]).index("paper: LiNUS") > list(table["method"]).index("t1net")


def test_localization_table_mean_and_sd():
    overlap = overlap_rows(subjects=("01", "02", "03"), methods=("net",))
    errors = {("01", "STN_L"): 1.0, ("02", "STN_L"): 2.0, ("03", "STN_L"): 6.0, ("01", "STN_R"): 0.5,
              ("02", "STN_R"): 0.5, ("03", "STN_R"): 0.5}
    for (subject, structure), error in errors.items():
        overlap.loc[(overlap["subject"] == subject) & (overlap["structure"] == structure), "com_error_mm"] = error
    table = localization_table(overlap).set_index(["method", "subject"])
    assert list(table.columns) == ["STN_L", "STN_R"]
    assert table.loc[("net", "02"), "STN_L"] == 2.0
    assert table.loc[("net", "mean"), "STN_L"] == pytest.approx(3.0)
    assert table.loc[("net", "sd"), "STN_L"] == pytest.approx(np.sqrt(7.0))  # sample sd of 1, 2, 6
    assert table.loc[("net", "sd"), "STN_R"] == pytest.approx(0.0)
    assert table.loc[("paper: LiNUS", "mean"), "STN_R"] == pytest.approx(18.47 / 14)
    every = localization_table(overlap, None)
    assert list(every.columns[2:]) == list(scored_structures())


def test_method_summary_and_table_files(tmp_path):
    overlap = overlap_rows()
    summary = method_summary(overlap).set_index(["structure", "method"])
    values = overlap.query("structure == 'THA_R' and method == 'atlas'")["recall"]
    assert summary.loc[("THA_R", "atlas"), "recall_mean"] == pytest.approx(values.mean())
    assert summary.loc[("THA_R", "atlas"), "recall_sd"] == pytest.approx(values.std())
    assert summary.loc[("THA_R", "atlas"), "n"] == 3
    assert list(summary.index.get_level_values("structure").unique()) == list(scored_structures())
    csv, markdown, latex = write_table(dice_table(overlap), tmp_path / "dice", "Mean Dice")
    assert pd.read_csv(csv).set_index("method").loc["paper: DB-ResUNet (QSM+T1 WI)", "GP"] == 0.840
    assert "| paper: DB-ResUNet (QSM+T1 WI) |" in markdown.read_text()
    assert "\\caption{Mean Dice}" in latex.read_text() and "0.840" in latex.read_text()
    assert len(write_evaluation_tables(overlap, tmp_path / "all")) == 9 * 3  # CSV, Markdown, LaTeX each
    ablations = {"rate": ["atlas", "net"]}
    assert (tmp_path / "all" / "ablation_rate.csv") in write_evaluation_tables(overlap, tmp_path / "all", ablations=ablations)


def test_efficiency_reads_the_atlas_benchmarks_and_the_inference_records(tmp_path):
    """An atlas method's time is its job's (Snakemake's benchmark file); a model's, its part of the session's
    inference job, which its record holds."""
    cases, expected = [], parameters_of(get_spec("linus"), in_channels=1, n_classes=3)  # background, STN_L, STN_R
    for subject, seconds in (("01", 2.0), ("02", 4.0)):
        benchmark = tmp_path / f"{subject}.tsv"
        benchmark.write_text(f"s\th:m:s\tmax_rss\n{2 * seconds}\t0:00:0{seconds:.0f}\t100\n")
        record = tmp_path / f"{subject}.json"
        record.write_text(json.dumps({"wall_seconds": seconds, "inference_seconds": seconds / 4, "device": "cpu",
                                      "parameters": expected}))
        cases += [TimingCase("linus", subject, record=str(record)), TimingCase("atlas", subject, str(benchmark))]
    models = {"linus": {"architecture": "linus", "inputs": ["Chimap"], "task": "stn"}}
    efficiency = efficiency_table(timing_table(cases)).set_index("method")
    assert efficiency.loc["linus", "parameters"] == expected and efficiency.loc["linus", "model_size"] == 4 * expected
    assert efficiency.loc["linus", "job_seconds"] == pytest.approx(3.0)
    assert efficiency.loc["linus", "job_seconds_sd"] == pytest.approx(np.sqrt(2.0))
    assert efficiency.loc["linus", "network_seconds"] == pytest.approx(0.75)
    assert efficiency.loc["linus", "network_seconds_sd"] == pytest.approx(np.sqrt(0.125))  # of 0.5 and 1.0
    # DB-ResUNet Table II's mean ± SD, both sides: each SD column after its mean, in seconds
    paper = efficiency.loc["paper: DB-ResUNet, DB-ResUNet Table II"]
    assert (paper["inference_time_gpu"], paper["inference_time_gpu_sd"]) == pytest.approx((1.293, 0.056))
    assert (paper["inference_time_cpu"], paper["inference_time_cpu_sd"]) == pytest.approx((1863.16, 7.54))
    assert efficiency.loc["paper: MRICloud, DB-ResUNet Table II", "inference_time_cpu_sd"] == pytest.approx(1800.0)
    columns = list(efficiency.columns)
    assert columns.index("inference_time_cpu_sd") == columns.index("inference_time_cpu") + 1
    assert columns.index("network_seconds_sd") == columns.index("network_seconds") + 1
    assert np.isnan(efficiency.loc["atlas", "parameters"]) and efficiency.loc["atlas", "job_seconds"] == pytest.approx(6.0)
    # the papers' times in seconds: MRICloud's 1.6 h, the LiNUS paper's registration method's 15 min
    assert efficiency.loc["paper: MRICloud, DB-ResUNet Table II", "inference_time_cpu"] == pytest.approx(5760.0)
    assert efficiency.loc["paper: Traditional method, LiNUS Table III", "job_seconds"] == pytest.approx(900.0)
    stn = stn_table(overlap_rows(methods=("atlas", "linus")), efficiency.reset_index(), models).set_index("method")
    assert stn.loc["linus", "parameters"] == expected and stn.loc["paper: LiNUS, LiNUS Table II", "dice"] == 0.679
    # the paper's 0.05 s is the network's time: beside ours, not beside the job's (interpreter, imports, I/O)
    assert stn.loc["paper: LiNUS, LiNUS Table II", "network_seconds"] == 0.05
    assert np.isnan(stn.loc["paper: LiNUS, LiNUS Table II", "job_seconds"])
    assert stn.loc["linus", "network_seconds"] == pytest.approx(0.75) and stn.loc["linus", "job_seconds"] == 3.0
    assert stn.loc["linus", "paper_method"] == "LiNUS" and stn.loc["atlas", "paper_method"] == "Traditional method"


def test_scatter_points_equal_the_table_values(tmp_path):
    overlap_rows().to_csv(tmp_path / "overlap.csv", index=False)
    overlap = pd.read_csv(tmp_path / "overlap.csv")
    figure = scatter_panels(overlap, "volume", "net")
    rows = overlap.query("method == 'net' and structure in ['RN_L', 'RN_R']")
    points = np.asarray(figure.axes[5].collections[0].get_offsets())  # RN is the sixth panel
    assert points == pytest.approx(rows[["reference_volume_mm3", "volume_mm3"]].to_numpy())
    assert [path.suffix for path in save_figure(figure, tmp_path / "scatter")] == [".png", ".svg"]
    assert (tmp_path / "scatter.png").stat().st_size > 0


@pytest.mark.slow  # draws every figure twice: a minute or more
def test_figures_drawn_in_parallel_are_those_drawn_in_one_process(tmp_path):
    overlap = overlap_rows(methods=("atlas", "net", "other"))
    one = write_evaluation_figures(overlap, ["net", "other"], tmp_path / "one")
    pool = write_evaluation_figures(overlap, ["net", "other"], tmp_path / "pool", workers=2)
    assert [path.name for path in pool] == [path.name for path in one] and len(one) == 2 + 2 * 8
    for first, second in zip(one, pool):
        if first.suffix == ".png":
            assert first.read_bytes() == second.read_bytes(), first.name


def test_regression_slope_of_a_linear_relation_shown_in_the_title():
    reference = np.array([10.0, 40.0, 55.0, 90.0, 120.0, 150.0])
    assert regression(reference, 2.0 * reference + 5.0) == pytest.approx((2.0, 5.0, 1.0))
    overlap = pd.DataFrame({"subject": [f"{i:02d}" for i in range(6)], "method": "net", "structure": "CN_L",
                            "volume_mm3": 2.0 * reference + 5.0, "reference_volume_mm3": reference})
    figure = scatter_panels(overlap, "volume", "net", nuclei=("CN",))
    ax = figure.axes[0]
    assert ax.get_title() == "CN: r = 1.000, slope = 2.000"
    fit = ax.lines[1]  # after the identity line
    x, y = fit.get_data()
    assert np.diff(y) / np.diff(x) == pytest.approx(2.0)


def test_bland_altman_bias_and_dice_boxplot_medians():
    overlap = overlap_rows(subjects=("01", "02", "03", "04", "05"))
    values = paired_values(overlap, "volume", "atlas").query("nucleus == 'PUT'")
    difference = values["predicted"] - values["reference"]
    bias_line, lower, upper = bland_altman(overlap, "volume", "atlas").axes[2].lines[:3]
    assert bias_line.get_ydata()[0] == pytest.approx(difference.mean())
    assert upper.get_ydata()[0] - lower.get_ydata()[0] == pytest.approx(2 * 1.96 * difference.std())
    ax = dice_boxplot(overlap).axes[0]
    medians = [line.get_ydata()[0] for line in ax.lines if line.get_color() == "k"]
    per_subject = overlap.query("method == 'atlas' and structure in ['CN_L', 'CN_R']").groupby("subject")["dice"].mean()
    assert medians[0] == pytest.approx(per_subject.median())  # first box: CN, first method (atlas)
    assert len(medians) == 7 * 2


def test_susceptibility_axes_state_how_the_qsm_was_referenced():
    from deepnuclei.figures import QSM_REFERENCES
    from deepnuclei.plan import EXISTING_QSM
    from deepnuclei.qsm.pipeline import REFERENCES

    # every reference the pipeline offers has its words, and existing maps (qsm.input) theirs
    assert set(QSM_REFERENCES) == {*REFERENCES, EXISTING_QSM}
    overlap = overlap_rows()
    axes = scatter_panels(overlap, "susceptibility", "net", qsm_reference="csf").axes[0]
    assert axes.get_xlabel() == "reference susceptibility (ppb, ventricular CSF = 0)"
    assert bland_altman(overlap, "susceptibility", "net").axes[0].get_ylabel().endswith("(ppb, whole-brain mean = 0)")
    assert scatter_panels(overlap, "volume", "net").axes[0].get_xlabel() == "reference volume (mm³)"


def test_the_headline_says_which_models_were_fine_tuned(tmp_path):
    for model, init in (("dbresunet", "/pkg/pretrained/dbresunet.zip"), ("linus", None)):
        (tmp_path / "models" / model).mkdir(parents=True)
        (tmp_path / "models" / model / "summary.json").write_text(json.dumps({"model": model, "init": init}))
    shown = headline(tmp_path, "report.html").splitlines()
    assert "Fine-tuned, not trained from scratch: dbresunet from /pkg/pretrained/dbresunet.zip" in shown
