"""The Benchmark (accuracy, size, latency and energy of variants side by side) and the budget picker.

The Benchmark runs tiny random BERTs on a tiny hand-made dataset, so its accuracies are chance, and timings
are only checked for consistency (other processes may share the machine), never for which variant is faster.
"""

from __future__ import annotations


def test_benchmark_sessions_do_not_spin_against_the_variants_timed_beside_them():
    from minikit.benchmark import benchmark_session_options

    options = benchmark_session_options(threads=2)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 2
