"""The fixed-point grid of the integer networks: where weights and activations sit, and their clamp."""

from __future__ import annotations

ACT_BITS = 12  # activations: multiples of 2**-12
WEIGHT_BITS = 14  # weights: multiples of 2**-14
ACT_LIMIT = 1024.0  # every activation, input and output is clamped to [-1024, 1024]
EXACT_LIMIT = 2.0**53  # float64 holds every integer below this exactly
