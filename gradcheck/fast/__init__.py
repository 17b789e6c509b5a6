"""The fast paths of the check: chunked evaluation, the screen, executors, and localisation of wrong entries."""
