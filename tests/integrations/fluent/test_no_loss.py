"""No loss, measured: records flow from a Fluent Bit ``forward`` output stand-in (gzip, acks, Retry_Limit
no_limits) through ``logwarden fluent-receiver`` to a Fluentd/Fluent Bit aggregator (@fluent-org/logger's
FluentServer) while the scoring server is killed and restarted, then the aggregator is killed and restarted
(all real processes; see no_loss.py). Every record must arrive with its content, scored or marked unscored;
duplicates are allowed (at least once) and reported.

The count is ``LOGWARDEN_NO_LOSS_RECORDS`` (default 20,000 to keep the suite fast on two shared cores);
``benchmarks/fluent.py --no-loss`` runs the same scenario with 100,000.
"""

from __future__ import annotations

import json
import os

from no_loss import run_no_loss

RECORDS = int(os.environ.get("LOGWARDEN_NO_LOSS_RECORDS", "20000"))


def test_no_record_lost_while_scorer_and_next_hop_die_and_return(model_root):
    report = run_no_loss(model_root, RECORDS)
    print("no-loss report:", json.dumps(report))
    assert report["missing"] == 0 and report["arrived_unique"] == RECORDS, report
    assert report["wrong_content"] == 0, report
    assert report["scored"] > 0 and report["unscored"] > 0, report  # both paths were taken
    assert report["receiver_exit_code"] == 0, report  # SIGTERM: drained and stopped cleanly
    assert len(report["steps"]) == 4, report
