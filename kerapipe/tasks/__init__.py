"""Use-cases (classification, ...): each owns its data layout, datasets, head and predictions."""
