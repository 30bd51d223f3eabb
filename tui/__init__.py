"""The terminal UI (installed as flows_tui.tui). Imported lazily by the CLI: core never imports it."""
