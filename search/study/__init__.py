"""A study in its storage: opening the storage (and surviving its outages), creating, joining and
checking a study, the sampling space, and retries."""
