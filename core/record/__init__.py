"""What a run leaves behind: the event stream (`events`), the fold of events into runs
(`model`), the SQLite journal (`store`), log and print capture (`logs`), terminal text
(`progress`) and notifications (`notify`)."""
