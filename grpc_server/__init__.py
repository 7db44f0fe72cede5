"""LogWarden grpc_server."""
