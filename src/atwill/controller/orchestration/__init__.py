"""The orchestration service (Heat's v1 API subset) and its engine, mounted at /orchestration."""
