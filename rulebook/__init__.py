"""The SQLite rulebook: artifacts, fetch log, versions, bitemporal fact tables, diff."""
