"""Every method of every service a server registers, as its reflection service lists them."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


@dataclass(frozen=True)
class Method:
    path: str  # /package.Service/Method
    client_streaming: bool
    server_streaming: bool

    def raw_call(self, channel: grpc.Channel):
        """A callable on ``channel`` that sends and receives bytes, with the method's shape."""
        kind = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
                (True, False): channel.stream_unary, (True, True): channel.stream_stream}
        return kind[(self.client_streaming, self.server_streaming)](self.path)


def registered_methods(channel: grpc.Channel, metadata=()) -> list[Method]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    def ask(**request) -> reflection_pb2.ServerReflectionResponse:
        return next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**request)]),
                                              metadata=metadata, timeout=10))

    methods = []
    for service in ask(list_services="").list_services_response.service:
        package, _, name = service.name.rpartition(".")
        for blob in ask(file_containing_symbol=service.name).file_descriptor_response.file_descriptor_proto:
            file = descriptor_pb2.FileDescriptorProto.FromString(blob)
            for declared in file.service:
                if file.package == package and declared.name == name:
                    methods += [Method(f"/{service.name}/{m.name}", m.client_streaming, m.server_streaming)
                                for m in declared.method]
    return methods
