"""Stubs generated from protos/inference/grpc_service.proto (the Open Inference Protocol) by make proto."""
