"""The egress proxy: apps send plain HTTP to 127.0.0.1:7080, partners receive mTLS (+ OAuth2)."""
