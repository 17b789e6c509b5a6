"""Adapters that turn users' own code (plain functions, step functions) into models of the checker's protocol."""
