"""Server reflection that carries the protos' comments, so `grpcurl describe` shows the contract's own words."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

# Written by `make proto` with --include_source_info: the _pb2 modules embed their descriptors without
# comments, so reflection answered from them would strip every comment in protos/.
DESCRIPTOR_SET = "descriptors.binpb"


@dataclass(frozen=True)
class _DescribedFile:
    """The part of a FileDescriptor that grpc_reflection uses, copying out the proto protoc wrote."""

    proto: descriptor_pb2.FileDescriptorProto
    dependencies: tuple[_DescribedFile, ...]

    @property
    def name(self) -> str:
        return self.proto.name

    def CopyToProto(self, proto: descriptor_pb2.FileDescriptorProto) -> None:  # noqa: N802 (protobuf's name)
        proto.CopyFrom(self.proto)


class DescribedPool:
    """A descriptor pool for grpc_reflection whose files keep their source info.

    grpc_reflection sends each file as FileDescriptor.CopyToProto gives it, and protobuf's descriptors drop
    the source info (the comments) on the way in; so the pool resolves names as usual but hands out the
    files as compiled."""

    def __init__(self, files: list[descriptor_pb2.FileDescriptorProto]):
        self._pool = descriptor_pool.DescriptorPool()
        self._files: dict[str, _DescribedFile] = {}
        for proto in files:  # dependencies first, as protoc writes a set with --include_imports
            self._pool.AddSerializedFile(proto.SerializeToString())
            self._files[proto.name] = _DescribedFile(proto, tuple(self._files[name] for name in proto.dependency))

    def FindFileByName(self, name: str) -> _DescribedFile:  # noqa: N802 (DescriptorPool's names)
        return self._files[self._pool.FindFileByName(name).name]

    def FindFileContainingSymbol(self, symbol: str) -> _DescribedFile:  # noqa: N802
        return self._files[self._pool.FindFileContainingSymbol(symbol).name]

    def __getattr__(self, name: str):
        return getattr(self._pool, name)  # messages and extensions: only their names and numbers are read


def _clear_json_names(messages) -> None:
    """Drop the json_name protoc fills in for every field: the stubs' descriptors have none, and with them
    grpcurl would print camelCase keys where it printed the proto's field names before."""
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _clear_json_names(message.nested_type)


def described_pool() -> DescribedPool:
    """Our protos with their comments, plus health and reflection (whose stubs are all we have of them)."""
    files = descriptor_pb2.FileDescriptorSet.FromString(
        resources.files("digitserve").joinpath(DESCRIPTOR_SET).read_bytes())
    for file in files.file:
        _clear_json_names(file.message_type)
    stubs = [descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
             for module in (health_pb2, reflection_pb2)]
    return DescribedPool([*files.file, *stubs])


def enable_reflection(server: grpc.Server, service_names: tuple[str, ...]) -> None:
    """Serve reflection for ``service_names`` and for reflection itself, from :func:`described_pool`."""
    reflection.enable_server_reflection((*service_names, reflection.SERVICE_NAME), server, pool=described_pool())
