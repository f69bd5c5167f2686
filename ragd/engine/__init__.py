"""Ingestion (chunk -> embed -> index), search, validation, collections."""
