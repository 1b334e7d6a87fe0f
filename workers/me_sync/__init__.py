"""First-request sync (`POST /api/me/sync`, DESIGN.md section 10): the task of a call."""
