"""The workers' shared base, used the same way by every feature: the Celery app object, the
engine and unit of work, advisory locks, the transient-error list and retry policy, the schedule
guard, task metrics. It imports no feature."""
