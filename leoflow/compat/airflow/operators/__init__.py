"""``airflow.operators`` (legacy Airflow 2 paths)."""
