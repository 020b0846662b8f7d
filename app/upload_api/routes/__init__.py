"""The upload API's routes: uploads, served files, readiness."""
