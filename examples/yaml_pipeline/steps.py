"""Task functions of yaml_pipeline; leoflow.yaml refers to them as `steps:<function>`."""

from __future__ import annotations


def count_shard(shard: str, size: int) -> int:
    """Pretend to download a shard and count its records."""
    print(f"shard {shard}: {size} records")
    return size


def combine(counts: list[int | None]) -> int:
    """Sum the shard counts (None where a shard produced nothing)."""
    total = sum(c for c in counts if c is not None)
    print(f"total records: {total}")
    return total
