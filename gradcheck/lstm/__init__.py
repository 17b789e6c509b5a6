"""The reference LSTM as a checkable model, its catalogue of BPTT bugs (mutants), and the self-test."""

MIN_STEPS = 3  # the mutants' expectations need two steps behind each first divergence
