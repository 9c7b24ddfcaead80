"""Example fiqa-bench plug-in: sharpness (variance of the Laplacian of the grey crop) as quality.

Kept free of heavy imports: ``bench list`` finds the card beside this file without importing it.
"""
