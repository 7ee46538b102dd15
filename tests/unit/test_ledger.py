import orjson

from fraudstream.ledger import Ledger


def tx(tid: str) -> bytes:
    return orjson.dumps({"transaction_id": tid, "amount": 1.0})


def score(tid: str, decision: str = "approve") -> bytes:
    return orjson.dumps({"transaction_id": tid, "decision": decision, "ingested_at_ms": 1000})


def dead(partition: int, offset: int) -> bytes:
    return orjson.dumps({"partition": partition, "offset": offset, "error": "bad_amount"})


def test_balanced_ledger() -> None:
    ledger = Ledger()
    ledger.produced(tx("a"), 0, 0)
    ledger.produced(tx("b"), 1, 0)
    ledger.produced(b"{broken", 0, 1)
    ledger.observe("scores", score("a"), 1010)
    ledger.observe("scores", score("b"), 1020)
    ledger.observe("dlq", dead(0, 1), 1030)
    summary = ledger.summary()
    assert (summary["produced"], summary["scored"], summary["dead_lettered"]) == (3, 2, 1)
    assert summary["lost"] == 0 and ledger.complete


def test_a_corrupt_copy_does_not_hide_a_lost_original() -> None:
    ledger = Ledger()
    ledger.produced(tx("a"), 0, 0)  # never scored: lost
    ledger.produced(tx("b"), 0, 1)
    ledger.produced(tx("a"), 0, 2)  # a corrupt copy with the same id, dead-lettered twice
    ledger.observe("scores", score("b"), 1000)
    ledger.observe("dlq", dead(0, 2), 1000)
    ledger.observe("dlq", dead(0, 2), 1000)
    assert ledger.dead_letters == 1
    assert ledger.lost() == 1


def test_one_score_accounts_for_one_record_and_conflicts_are_counted() -> None:
    ledger = Ledger()
    ledger.produced(tx("a"), 0, 0)
    ledger.produced(tx("a"), 0, 1)  # a duplicate that was scored instead of dead-lettered
    ledger.observe("scores", score("a", "approve"), 1000)
    ledger.observe("scores", score("a", "decline"), 1000)
    summary = ledger.summary()
    assert summary["lost"] == 1
    assert summary["duplicates"] == 1 and summary["conflicting_decisions"] == 1
