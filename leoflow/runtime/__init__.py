"""What runs inside a worker: the runner (user code, one task try) and, on Pro, the agent.

Standard library only, so it can be copied into every DAG venv and image.
"""
