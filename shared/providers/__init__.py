"""Clients for third-party APIs, each created lazily and pointed at its base-URL setting."""
