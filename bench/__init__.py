"""fiqa-bench: a benchmark harness for face image quality assessment (FIQA).

Reproduces the evaluation of DifFIQA (Babnik, Peer, Struc, IJCB 2023): per-image quality
scores, face-recognition embeddings, Error-versus-Discard curves and pAUC tables.
"""

__version__ = "0.2.0"
