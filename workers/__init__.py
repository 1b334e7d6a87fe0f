"""Celery workers: the app, the tasks and the beat schedule. Uses `db`, never `webhooks`."""
