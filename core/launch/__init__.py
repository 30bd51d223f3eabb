"""Starting runs: `flows-tui run` and a flow called from Python (`runner`), `run --watch`
(`watch_run`)."""
