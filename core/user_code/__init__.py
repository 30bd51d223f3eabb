"""The user's code as the engine handles it: imported under private names (`imports`),
fingerprinted for cache keys (`task_source`) and shipped to workers by value (`pickling`)."""
