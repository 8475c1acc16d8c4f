"""The `accord` command line."""
