"""The browser's onboarding data (kept in session storage before sign-up): its validation, its
data migration into profiles and interactions, import from a file, rollback."""
