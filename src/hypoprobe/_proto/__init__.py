"""Generated protobuf code for the Prometheus exposition data model (see metrics.proto)."""
