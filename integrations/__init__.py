"""HTTP clients for the invoice providers. Plain data in, plain data out: no Django models."""
