"""cpn-sync: keeps the CPN app's PostgreSQL database in step with Clerk."""
