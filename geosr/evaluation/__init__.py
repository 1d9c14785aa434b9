"""Scoring and pictures: eval on HR references, bench, misalignment, reports, quicklooks."""
