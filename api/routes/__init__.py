"""HTTP route handlers, one module per area; each module exports ``ROUTES``."""
