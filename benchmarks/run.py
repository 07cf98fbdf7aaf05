"""`make bench`: every measurement, in one run, printed as the Markdown README.md records.

    python benchmarks/run.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import accuracy, hostile, pipeline, throughput


def main() -> int:
    print("## Ingest pipeline (`python -m benchmarks.pipeline`)\n")
    pipeline.main([])
    print("\n## Requests built to cost (`python -m benchmarks.hostile`)\n")
    hostile.main()
    print("\n## Through the local runner (`python -m benchmarks.throughput`)\n")
    throughput.main([])
    print()
    return accuracy.main([])


if __name__ == "__main__":
    sys.exit(main())
