"""The node process assembled: its configuration, and the wiring of node, api and
security into one server.

The packages below it depend only downwards (node knows neither api nor security;
api knows node but not security; security knows both); this package is the one place
that puts them together.
"""
