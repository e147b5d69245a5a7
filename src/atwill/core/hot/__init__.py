"""Heat Orchestration Templates: parsing, parameters, functions, conditions and ordering.

Pure logic: nothing here talks to a database or a service.
"""
