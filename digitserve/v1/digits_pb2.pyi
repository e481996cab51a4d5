from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoadState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOAD_STATE_UNSPECIFIED: _ClassVar[LoadState]
    LOADED: _ClassVar[LoadState]
    FAILED: _ClassVar[LoadState]
LOAD_STATE_UNSPECIFIED: LoadState
LOADED: LoadState
FAILED: LoadState

class PredictRequest(_message.Message):
    __slots__ = ("model", "u8", "f32", "sequence")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    U8_FIELD_NUMBER: _ClassVar[int]
    F32_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    model: str
    u8: bytes
    f32: FloatPixels
    sequence: int
    def __init__(self, model: _Optional[str] = ..., u8: _Optional[bytes] = ..., f32: _Optional[_Union[FloatPixels, _Mapping]] = ..., sequence: _Optional[int] = ...) -> None: ...

class FloatPixels(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("digit", "confidence", "probabilities", "unsure", "unsure_reason")
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    UNSURE_FIELD_NUMBER: _ClassVar[int]
    UNSURE_REASON_FIELD_NUMBER: _ClassVar[int]
    digit: int
    confidence: float
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    unsure: bool
    unsure_reason: str
    def __init__(self, digit: _Optional[int] = ..., confidence: _Optional[float] = ..., probabilities: _Optional[_Iterable[float]] = ..., unsure: _Optional[bool] = ..., unsure_reason: _Optional[str] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("predictions", "model", "version", "sequence")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    model: str
    version: str
    sequence: int
    def __init__(self, predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ..., model: _Optional[str] = ..., version: _Optional[str] = ..., sequence: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "kind", "members", "version", "sha256", "size_bytes", "training_samples", "test_accuracy", "created", "default", "state", "probabilities", "error", "load_seconds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TRAINING_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    TEST_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LOAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    members: _containers.RepeatedScalarFieldContainer[str]
    version: str
    sha256: str
    size_bytes: int
    training_samples: int
    test_accuracy: float
    created: str
    default: bool
    state: LoadState
    probabilities: str
    error: str
    load_seconds: float
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., members: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., training_samples: _Optional[int] = ..., test_accuracy: _Optional[float] = ..., created: _Optional[str] = ..., default: _Optional[bool] = ..., state: _Optional[_Union[LoadState, str]] = ..., probabilities: _Optional[str] = ..., error: _Optional[str] = ..., load_seconds: _Optional[float] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "default_model")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    default_model: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., default_model: _Optional[str] = ...) -> None: ...

class ReloadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelChange(_message.Message):
    __slots__ = ("name", "version", "previous_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    previous_version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., previous_version: _Optional[str] = ...) -> None: ...

class LoadFailure(_message.Message):
    __slots__ = ("name", "path", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReloadResponse(_message.Message):
    __slots__ = ("added", "updated", "removed", "failed", "unchanged", "default_model", "seconds")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    added: _containers.RepeatedCompositeFieldContainer[ModelChange]
    updated: _containers.RepeatedCompositeFieldContainer[ModelChange]
    removed: _containers.RepeatedCompositeFieldContainer[ModelChange]
    failed: _containers.RepeatedCompositeFieldContainer[LoadFailure]
    unchanged: _containers.RepeatedScalarFieldContainer[str]
    default_model: str
    seconds: float
    def __init__(self, added: _Optional[_Iterable[_Union[ModelChange, _Mapping]]] = ..., updated: _Optional[_Iterable[_Union[ModelChange, _Mapping]]] = ..., removed: _Optional[_Iterable[_Union[ModelChange, _Mapping]]] = ..., failed: _Optional[_Iterable[_Union[LoadFailure, _Mapping]]] = ..., unchanged: _Optional[_Iterable[str]] = ..., default_model: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...
