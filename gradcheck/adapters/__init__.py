"""Users' own code (plain functions, step functions) as models of the checker's protocol."""
