"""Cluster mode on Redis Streams: the write log, embedding workers, index replicas."""
