"""The Block Storage v3 API (a Cinder subset) and the controller's side of volumes."""
