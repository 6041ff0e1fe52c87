"""The benchmarks (``make bench``): a package, so its conftest is not the test suite's."""
