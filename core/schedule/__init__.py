"""Runs on a schedule: when flows are due and the loop that fires them (`scheduler`), and
the headless service behind `flows-tui serve` and `Flow.serve` (`serve`)."""
