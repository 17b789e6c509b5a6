"""Our own small models in the shapes people write backward passes in, with correct and buggy factories."""
