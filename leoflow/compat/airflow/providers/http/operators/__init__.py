"""``airflow.providers.http.operators``."""
