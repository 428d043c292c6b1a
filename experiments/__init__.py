"""The simulator, closed-loop experiments and the benchmarks."""
