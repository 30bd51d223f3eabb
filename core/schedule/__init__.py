"""Runs on a schedule: the loop that fires due flows and the lock that lets one process do it
(`scheduler`), and the headless service behind `flows-tui serve` and `Flow.serve` (`serve`).
What a schedule is and when it is next due: `flows_tui.project.schedules`."""
