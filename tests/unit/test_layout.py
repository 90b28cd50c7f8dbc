"""Paths and the session wildcard's patterns."""

from __future__ import annotations

import re

from deepnuclei.layout import Layout, session_constraint


def rule_regex(template: str, constraint: str) -> re.Pattern:
    """A path template's regex as Snakemake builds it: the wildcard's first place a named group, the others
    back-references."""
    first, *rest = re.escape(template).split(re.escape("{subject}"))
    return re.compile(first + f"(?P<subject>{constraint})" + "(?P=subject)".join(rest))


def test_a_rule_serves_its_sessions_and_no_other_whether_listed_or_excluded():
    layout = Layout.of("results")
    others = ["02", "p01", "p01_ses-post"]
    sessions = ["01", "03", "p01_ses-pre", "p010", "p01_ses-pre2"] * 2  # more than the others: excluded
    excluded = session_constraint(sessions, others)
    listed = session_constraint(others, sessions)
    assert excluded.startswith("(?!") and listed == "02|p01|p01_ses\\-post"
    for template in (layout.segmentation("linus", "{subject}", "SWI"), layout.inference_record("linus", "{subject}")):
        served = {key for key in {*sessions, *others} if rule_regex(template, excluded).fullmatch(
            template.replace("{subject}", key))}
        assert served == set(sessions)
        served = {key for key in {*sessions, *others} if rule_regex(template, listed).fullmatch(
            template.replace("{subject}", key))}
        assert served == set(others)
    assert session_constraint([], ["01"]) == "(?!)"
