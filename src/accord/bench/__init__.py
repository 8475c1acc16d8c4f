"""`accord bench`: a load generator and its reports (see `runner` for how it works)."""
