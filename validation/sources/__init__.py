"""Untrusted input at ingest: defensive decoding (PNG/JPEG/DICOM), normalising, the ingest manifest."""
