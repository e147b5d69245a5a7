"""The storage node: volumes in files, exported over NBD with TLS to one node each."""
