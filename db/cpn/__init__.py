"""The CPN figures in SQL: recompute statements, the recommendation rules, the queries the
workers and the share pages read."""
