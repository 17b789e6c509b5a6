"""Small models of our own in the shapes people write backward passes in, each with a correct and a buggy factory."""
