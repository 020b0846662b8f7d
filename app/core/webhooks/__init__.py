"""Upload events: ImageKit's webhooks (``file.created``, ``file-version.created``) from our upload
API, signed as ImageKit signs them, delivered at least once from a durable outbox.

- ``events``: the event's JSON and its signature headers (pure).
- ``outbox``: where events wait until delivered: Redis when configured (shared by the
  replicas), else SQLite on the storage volume; both survive a restart.
- ``sender``: the loop that delivers them, retries with back-off, and records the dead.
"""
