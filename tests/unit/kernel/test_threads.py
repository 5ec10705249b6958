"""Every thread the app starts runs what its starting thread carries (the Functions invocation ID)."""

from __future__ import annotations

import threading

from dr_core.kernel.threads import carried_into_threads, parallel_map, thread_pool

LOCAL = threading.local()  # stands in for the Python worker's thread-local invocation ID


def _seen(_: object) -> str | None:
    return getattr(LOCAL, "invocation_id", None)


def test_pool_threads_run_the_setup_of_the_thread_that_started_them() -> None:
    def tag() -> None:
        LOCAL.invocation_id = "inv-1"

    with carried_into_threads(tag):
        assert parallel_map(_seen, range(4), max_workers=4, name="t") == ["inv-1"] * 4
        with thread_pool(2, name="t") as pool:
            assert list(pool.map(_seen, range(3))) == ["inv-1"] * 3
    # Outside the block, new pools carry nothing.
    assert parallel_map(_seen, range(3), max_workers=3, name="t") == [None] * 3


def test_a_pool_started_from_a_pool_thread_carries_it_on() -> None:
    def tag() -> None:
        LOCAL.invocation_id = "inv-2"

    def nested(_: object) -> list[str | None]:
        return parallel_map(_seen, range(2), max_workers=2, name="inner")

    with carried_into_threads(tag):
        assert parallel_map(nested, range(2), max_workers=2, name="outer") == [["inv-2", "inv-2"]] * 2


def test_concurrent_invocations_each_carry_their_own() -> None:
    results: dict[str, list[str | None]] = {}

    def invocation(name: str) -> None:
        def tag() -> None:
            LOCAL.invocation_id = name

        with carried_into_threads(tag):
            results[name] = parallel_map(_seen, range(5), max_workers=3, name=name)

    threads = [threading.Thread(target=invocation, args=(f"inv-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {f"inv-{i}": [f"inv-{i}"] * 5 for i in range(4)}
