"""``airflow.utils`` (authoring helpers only)."""
