"""Reliability: the automations under duplicated, reordered and failing deliveries, malformed input and
policy changes. Fast variants run in ``make test``; ``@pytest.mark.slow`` ones in ``make soak``."""
