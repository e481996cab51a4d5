"""The README's benchmark section is the committed run's report, line for line."""

from __future__ import annotations

from tests.conftest import ROOT


def test_the_readme_shows_the_committed_benchmark_report():
    # bench.run writes bench/results.md next to results.json; a rerun that is committed
    # without the README (or a README edited by hand) would show figures nobody measured.
    readme = (ROOT / "README.md").read_text().splitlines()
    report = [line for line in (ROOT / "bench" / "results.md").read_text().splitlines() if line.strip()]
    assert report, "bench/results.md is empty"
    missing = [line for line in report if line not in readme]
    assert not missing, f"README.md lacks {len(missing)} lines of bench/results.md, first: {missing[0]!r}"
