"""The web dashboard: server-rendered pages over the controller's own APIs."""
