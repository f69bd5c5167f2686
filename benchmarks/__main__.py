"""`python -m benchmarks`: the whole harness, ragd and its peers side by side (see benchmarks/harness.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import main  # noqa: E402

main()
