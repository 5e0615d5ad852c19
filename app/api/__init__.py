"""REST API ``/api/v1`` for the 12345 hotline platform and other integrations."""
