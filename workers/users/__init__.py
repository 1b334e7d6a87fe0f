"""Clerk users and sessions: upserts, deletion and tombstones, session expiry."""
