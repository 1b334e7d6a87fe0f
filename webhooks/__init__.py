"""The HTTP edge: Clerk webhooks in, operational endpoints out. Uses `db`, never `workers`."""
