"""The `webhook_events` state machine: apply stored events (single, batch, backlog), dispatch
by type, sweep lost messages, replay, payload retention."""
