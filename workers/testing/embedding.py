"""Deterministic embedding vectors: the same input and size always give the same unit vector.

Vectors come from a hash of the input, so different inputs give different vectors and a test
can recompute the expected one with `embedding_vector`.
"""

from __future__ import annotations

import array
import base64
import functools
import hashlib
import math
import sys

DEFAULT_DIMENSIONS = 1536
MODEL_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
# text-embedding-ada-002 has a fixed size; only the v3 models take `dimensions`.
FIXED_SIZE_MODELS = frozenset({"text-embedding-ada-002"})


def default_dimensions(base_model: str) -> int:
    return MODEL_DIMENSIONS.get(base_model, DEFAULT_DIMENSIONS)


@functools.lru_cache(maxsize=1024)
def embedding_vector(key: str, dimensions: int) -> tuple[float, ...]:
    """A unit vector of `dimensions` float32 values derived from `key`."""
    raw = hashlib.shake_256(key.encode()).digest(2 * dimensions)
    values = array.array("h", raw)
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    # Round through float32, as the service does, so float and base64 forms agree exactly.
    return tuple(array.array("f", [v / norm for v in values]))


@functools.lru_cache(maxsize=1024)
def embedding_base64(key: str, dimensions: int) -> str:
    """The vector as base64 of little-endian float32 values (`encoding_format: base64`)."""
    packed = array.array("f", embedding_vector(key, dimensions))
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


def input_key(item: str | list[int]) -> str:
    """A stable text key for one input, a string or an array of token ids."""
    return item if isinstance(item, str) else "tokens:" + ",".join(map(str, item))
