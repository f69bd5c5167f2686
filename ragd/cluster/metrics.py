"""Cluster figures for a replica's /metrics, read at scrape time: its own position
and lag per collection, the append-to-applied delay histogram, and the cluster's
streams as Redis reports them (lengths, the workers' backlog, pending entries per
consumer). The backlog, ragd_cluster_write_backlog, is what the workers' autoscaler
follows (deploy/k8s: an external metric)."""
from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from ragd.cluster import status
from ragd.cluster.replica import DELAY_BUCKETS, Follower

log = logging.getLogger("ragd.cluster")


def collect(f: Follower) -> Iterator:
    applied = GaugeMetricFamily("ragd_cluster_applied_sequence", "Write-log position applied here (every write up "
                                "to it).", labels=["collection"])
    lag_n = GaugeMetricFamily("ragd_cluster_replica_lag_entries", "Writes acknowledged but not yet applied here.",
                              labels=["collection"])
    lag_s = GaugeMetricFamily("ragd_cluster_replica_lag_seconds", "Seconds this replica is behind: age of the last "
                              "write applied while writes wait (0 when caught up).", labels=["collection"])
    for c in sorted(f.positions):
        n, s = f.lag(c)
        applied.add_metric([c], f.applied(c))
        lag_n.add_metric([c], n)
        lag_s.add_metric([c], s)
    yield from (applied, lag_n, lag_s)
    yield GaugeMetricFamily("ragd_cluster_connected", "1 while the replica reaches Redis.", value=int(f.connected))
    yield GaugeMetricFamily("ragd_cluster_broken_collections", "Collections this replica cannot follow (trimmed past "
                            "its position or lost by Redis; see the log).", value=len(f.broken))
    yield CounterMetricFamily("ragd_cluster_applied_entries", "Embedded-stream entries applied here.",
                              value=f.applied_entries)
    yield CounterMetricFamily("ragd_cluster_duplicate_entries", "Embedded-stream entries skipped as already applied "
                              "(a write embedded twice).", value=f.duplicates)
    cum, buckets = 0, []
    for bound, count in zip((*DELAY_BUCKETS, float("inf")), f.delays):
        cum += count
        buckets.append(("+Inf" if bound == float("inf") else str(bound), cum))
    h = HistogramMetricFamily("ragd_cluster_apply_delay_seconds", "From a write's append to the write log to its "
                              "application here.")
    h.add_metric([], buckets, sum_value=f.delay_sum)
    yield h
    try:
        states = status.cluster_state(f.redis, f.keys)
    except Exception as exc:  # noqa: BLE001 - Redis down: the replica's own figures above still count
        log.debug("metrics: cluster state unavailable (%s)", exc)
        return
    wlen = GaugeMetricFamily("ragd_cluster_stream_length", "Entries kept in a stream.", labels=["collection", "stream"])
    backlog = GaugeMetricFamily("ragd_cluster_write_backlog", "Writes no worker has finished: waiting for one, "
                                "or in a worker's hands (the workers' autoscaling signal).", labels=["collection"])
    pending = GaugeMetricFamily("ragd_cluster_pending_entries", "Write-log entries a worker took and has not "
                                "acknowledged, per consumer.", labels=["collection", "consumer"])
    head = GaugeMetricFamily("ragd_cluster_head_sequence", "Newest write-log position.", labels=["collection"])
    for st in states:
        wlen.add_metric([st.name, "write_log"], st.write_log_length)
        wlen.add_metric([st.name, "embedded"], st.embedded_length)
        backlog.add_metric([st.name], st.backlog)
        head.add_metric([st.name], st.head)
        for cons in st.consumers:
            pending.add_metric([st.name, cons.name], cons.pending)
    yield from (wlen, backlog, pending, head)



