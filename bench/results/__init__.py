"""Layer 4: what runs leave behind and what they are held against — the pAUC table, published values, checks, reference sets."""
