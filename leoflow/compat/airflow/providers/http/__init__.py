"""``airflow.providers.http``."""
