"""The quick run of the protobuf-level mutation fuzzer (`tests/fuzz_models.py`): 200 mutated
zoo models through `dgc compile` - every one ends with a documented exit code and at most one
error line, no traceback, no partial output. The long run (10,000 cases) is
`python3 tests/fuzz_models.py --cases 10000`."""

from __future__ import annotations

from fuzz_models import fuzz


def test_fuzz_quick():
    counts, problems = fuzz(200, seed=0)
    assert not problems, problems[:5]
    assert sum(counts.values()) == 200 and counts[0] > 0 and counts[3] > 0  # both outcomes exercised
