"""Models assembled from tilec kernels."""
