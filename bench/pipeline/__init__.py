"""Layer 3: turning a cell into numbers — resolve, plan, align/embed, score, compare, run, executors."""
