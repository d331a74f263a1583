"""scale.py with a reference that disagrees, so `tilec run --check` must fail with exit code 1."""
from scale import DEFAULTS, KERNEL, OUT_IDX, TOLERANCE  # noqa: F401


def reference(X, alpha=2.0, **params):
    return X * alpha + 0.5
