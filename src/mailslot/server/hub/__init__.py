"""The hub sessions talk to about other users: in-process, or a PostgreSQL cluster."""
