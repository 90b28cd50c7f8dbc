"""Paths and the session wildcards' patterns."""

from __future__ import annotations

import re

from deepnuclei.layout import SESSION_DIR, SUBJECT, Layout, folder_key, session_constraint, session_folder


def rule_regex(template: str, constraint: str) -> re.Pattern:
    """A path template's regex as Snakemake builds it: each wildcard's first place a named group, the others
    back-references; `session_dir` with the workflow's constraint, `subject` with `constraint`."""
    pattern = re.escape(template)
    for name, regex in (("session_dir", SESSION_DIR), ("subject", constraint)):
        first, *rest = pattern.split(re.escape(f"{{{name}}}"))
        pattern = first + (f"(?P<{name}>{regex})" + f"(?P={name})".join(rest) if rest else "")
    return re.compile(pattern)


def test_a_rule_serves_its_sessions_and_no_other_whether_listed_or_excluded():
    layout = Layout.of("results")
    others = ["02", "p01", "p01_ses-post"]
    sessions = ["01", "03", "p01_ses-pre", "p010", "p01_ses-pre2"] * 2  # more than the others: excluded
    excluded = session_constraint(sessions, others)
    listed = session_constraint(others, sessions)
    assert excluded.startswith("(?!") and listed == "02|p01|p01_ses\\-post"
    for path in (lambda key: layout.segmentation("linus", key, "SWI"), lambda key: layout.inference_record("linus", key)):
        for constraint, served in ((excluded, set(sessions)), (listed, set(others))):
            assert {key for key in {*sessions, *others} if rule_regex(path(SUBJECT), constraint).fullmatch(path(key))} \
                == served
    assert session_constraint([], ["01"]) == "(?!)"


def test_a_session_lives_in_bids_folder_of_it_and_the_rules_match_it_there():
    layout = Layout.of("results")
    assert layout.qsm("01_ses-pre", "Chimap.nii.gz", "sharptv") == \
        "results/qsm/sub-01/ses-pre/sub-01_ses-pre_space-SWI_desc-sharptv_Chimap.nii.gz"
    assert layout.qsm("01", "Chimap.nii.gz", "sharptv") == "results/qsm/sub-01/sub-01_space-SWI_desc-sharptv_Chimap.nii.gz"
    assert layout.log("qsm_sharptv", "01_ses-pre") == "results/logs/qsm_sharptv/sub-01/ses-pre/sub-01_ses-pre.log"
    assert layout.log("measures_session", "01_ses-pre", named=False) == "results/logs/measures_session/sub-01/ses-pre.log"
    assert layout.log("measures") == "results/logs/measures/sub-all.log"
    assert session_folder(SUBJECT) == "sub-{session_dir}" and folder_key("01/ses-pre") == "01_ses-pre"
    for key in ("01", "01_ses-pre"):
        for template, path in ((layout.t1_in_swi(SUBJECT), layout.t1_in_swi(key)),
                               (layout.benchmark("t1_to_swi", SUBJECT), layout.benchmark("t1_to_swi", key)),
                               (layout.measures_dir(SUBJECT), layout.measures_dir(key))):
            found = rule_regex(template, "[A-Za-z0-9_-]+").fullmatch(path).groupdict()
            assert folder_key(found["session_dir"]) == key and found.get("subject", key) == key
