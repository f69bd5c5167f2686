# The compiled core (sources in ragd/native, built by CMakeLists.txt). To type
# checkers its functions are untyped (Any); their contracts are documented
# beside the C++ code and checked by tests/native and the Python tests.
from typing import Any

def __getattr__(name: str) -> Any: ...
