"""The canary tasks: one per queue, proof that a worker consumes it."""
