"""Clerk's Backend API: the client that backfill, reconciliation and sync-user read users with."""
