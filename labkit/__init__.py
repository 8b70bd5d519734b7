"""servelab's library: the registry serving path in network namespaces, measured hop by hop."""
__version__ = "0.1.0"
