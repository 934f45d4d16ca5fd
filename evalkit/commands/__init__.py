"""CLI commands kept in their own modules; each module lists its click commands in ``COMMANDS``."""
