"""A minimal, complete TLS 1.3 stack (RFC 8446). It knows nothing of ECH."""
