"""upload-auth: short-lived upload credentials for ImageKit-compatible upload APIs."""
