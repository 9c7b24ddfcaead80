"""Layer 0: what every other part stands on — cards, the registry, options, paths, atomic I/O, errors, provenance, weights."""
