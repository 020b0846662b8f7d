"""The bulk uploader: ``upload-auth upload PATH... --to URL``.

The upload API takes one file per request; this walks folders and uploads N files at a time,
with retries on fresh credentials, a resumable manifest, a progress bar and a report.
"""
