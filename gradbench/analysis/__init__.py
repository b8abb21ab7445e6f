"""From records to a ranking: scoring, the comparison behind verify, the page and its plots.
No torch."""
