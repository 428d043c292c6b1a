"""Claims on the customers being decided."""

from __future__ import annotations

import threading

import pytest

from serving.in_flight import InFlight


def test_a_claim_on_a_claimed_customer_waits_until_the_first_ends() -> None:
    flight = InFlight()
    order: list[str] = []
    inside = threading.Event()

    def second() -> None:
        inside.wait(5)
        with flight.claim(["b", "c"]):
            order.append("second")

    worker = threading.Thread(target=second)
    worker.start()
    with flight.claim(["a", "b"]):
        inside.set()
        worker.join(0.2)
        assert worker.is_alive(), "the second claim shares b: it waits"
        order.append("first")
    worker.join(5)
    assert order == ["first", "second"] and len(flight) == 0


def test_claims_on_other_customers_do_not_wait() -> None:
    flight = InFlight()
    with flight.claim(["a"]):
        done = threading.Event()
        worker = threading.Thread(target=lambda: (flight.claim(["b"]).__enter__(), done.set()))
        worker.start()
        assert done.wait(5)
        worker.join()


def test_a_claim_ends_when_its_block_fails() -> None:
    flight = InFlight()
    with pytest.raises(RuntimeError), flight.claim(["a"]):
        raise RuntimeError("the decision failed")
    assert len(flight) == 0
    with flight.claim(["a"]):
        assert len(flight) == 1
