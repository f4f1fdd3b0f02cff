"""Pure functions of arrays/tensors behind ``dq.analyze`` (no pandas, no widgets, no journal).

device (where to run) · knn (the one kNN graph) · probe (out-of-fold probabilities) · label
(confident learning + kNN agreement) · ood (kNN distance, Mahalanobis, energy) · duplicates ·
slices · spurious · drift · layout (PCA, UMAP). Each score's docstring names its paper.
"""
