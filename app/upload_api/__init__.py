"""The ImageKit-compatible Upload API: verifies every credential, stores files, speaks
ImageKit's wire format (``POST /api/v1/files/upload``, ``POST /api/v2/files/upload``)."""
