"""``airflow.providers``: only the standard and HTTP operators are provided."""
