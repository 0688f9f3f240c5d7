"""The `leoflow` command line: thin typer commands over library functions."""
