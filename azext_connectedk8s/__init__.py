"""connectedk8s az extension.

The command surface (proxy, show, connect, ...) is being built on top of
the native core in azext_connectedk8s._native; until it lands this package
only carries that module and registers no az commands.
"""
