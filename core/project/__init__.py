"""The user's project: flows.toml (`config`), a flow's schedule (`schedules`), flow files and
their loading (`flow_files`, `flows_directory`, `watch`), the static plan of a flow (`plan`)
and the catalog that `list`, `check` and the UI show (`catalog`)."""
