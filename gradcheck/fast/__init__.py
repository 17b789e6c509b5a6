"""Speed without changing a number: chunked and batched evaluation, the random-projection screen, executors."""
