"""The web console: pages for legal, auditors and engineers, served under /console by the API's own app.

Server-rendered from Jinja2 templates (autoescape on), one local stylesheet, no script. Signing in trades an
API token for a session kept in memory (`sessions`); each page admits the one role its API route admits
(`routing`) and does its work through the same functions. `mount.install_console` adds it to an app.
"""
