"""The Airflow 3 web UI: the pinned bundle (bundle.py), its routes (static.py), its call table."""
