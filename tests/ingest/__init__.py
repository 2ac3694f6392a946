"""Tests of the bulk ingest pipeline."""
