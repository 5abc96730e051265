"""Sparse training on any ``nn.Module`` (being assembled)."""
from .masks import MaskState, maskable_parameters
from .optimizer_state import UnknownOptimizerStateError, register_optimizer_state
