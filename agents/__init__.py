"""The worker agent shipped to hosts; imports only its own protocol module."""
