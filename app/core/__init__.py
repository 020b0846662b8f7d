"""The shared core below both wings: keys, the clock, problems, ImageKit's rules,
credentials, the ledger and its records, webhooks, settings. Imports neither wing."""
