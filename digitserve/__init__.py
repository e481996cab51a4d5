"""digitserve: what the trainer, the server and the clients share."""
