"""Serving: champions over HTTP (app and the modules it is built from) and batch scoring of files (batch)."""
