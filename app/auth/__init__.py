"""Users, roles, scopes, sessions and API tokens."""
