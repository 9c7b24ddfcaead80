"""Layer 3: pure statistics on arrays — EDC/pAUC, bootstrap intervals, paired tests, agreement."""
