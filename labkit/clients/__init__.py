"""The pull clients: the programs and libraries that fetch an image from a registry, one module per kind.

Kept apart from the Django app the lab serves (labkit.app): measure imports the clients; the lab imports
only what it needs to ask a registry whether it serves (a manifest request).
"""
