"""CPN (cost-per-nut) results: the recompute tasks and jobs, the one way to request a recompute,
and the `cpn-sync cpn` commands."""
