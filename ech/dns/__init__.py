"""ECH configuration discovery through DNS HTTPS records (RFC 9460, RFC 9848)."""
