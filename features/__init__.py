"""Feature definitions: one code path for offline (training, backtests) and online (workers)."""

from fraudstream.features.definitions import (
    FEATURE_NAMES,
    CardState,
    MerchantState,
    compute_features,
)
from fraudstream.features.offline import build_feature_matrix

__all__ = ["FEATURE_NAMES", "CardState", "MerchantState", "build_feature_matrix",
           "compute_features"]
