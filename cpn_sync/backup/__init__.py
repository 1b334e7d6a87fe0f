"""`cpn-sync backup` and `cpn-sync restore`, with the PostgreSQL client tools they run."""
