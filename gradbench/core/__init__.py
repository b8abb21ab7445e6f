"""The vocabulary every layer shares, with no torch: the run spec, errors, the registry,
typed settings and the numerics version."""
