"""One handler per event family; `workers.process_event` dispatches to them by event type."""
