"""Scheduler unit tests: builders live in sched_unit_helpers.py (imported by each test)."""
