"""Who may call what: one policy table for every method of every service the server registers.

The interceptor (server/interceptor.py) asks ``Access.check`` before any
handler runs, so no RPC can forget it. A method the table does not name gets
READER access: a service registered later is guarded like Predict by default,
never left open by accident.
"""

from __future__ import annotations

import enum
import hmac
from typing import Sequence

from server.errors import PermissionDenied, Unauthenticated


class Level(enum.Enum):
    OPEN = "open"          # no token, ever: probes must work without secrets
    READER = "reader"      # the token when --protect-all is set
    OPERATOR = "operator"  # the token whenever one is set: calls that change what is served


# Keys are full method paths, or a service path ending in "/" for all its methods.
POLICY: dict[str, Level] = {
    "/grpc.health.v1.Health/": Level.OPEN,
    # The Open Inference Protocol's own probes, which say no more than health does.
    "/inference.GRPCInferenceService/ServerLive": Level.OPEN,
    "/inference.GRPCInferenceService/ServerReady": Level.OPEN,
    "/digitserve.v1.Digits/Reload": Level.OPERATOR,
}
DEFAULT = Level.READER


def level_of(method: str) -> Level:
    """The access level of a full method path such as ``/digitserve.v1.Digits/Predict``."""
    service = method.rpartition("/")[0] + "/"
    return POLICY.get(method, POLICY.get(service, DEFAULT))


class Access:
    """Checks the ``authorization: Bearer TOKEN`` metadata against the level a method needs."""

    def __init__(self, token: str, protect_all: bool):
        self._token = token.encode()
        self._protect_all = protect_all

    def needs_token(self, method: str) -> bool:
        level = level_of(method)
        if not self._token or level is Level.OPEN:
            return False
        return level is Level.OPERATOR or self._protect_all

    def check(self, method: str, metadata: Sequence[tuple[str, str | bytes]] | None) -> None:
        """Raise Unauthenticated or PermissionDenied unless the call may go ahead."""
        if not self.needs_token(method):
            return
        header = dict(metadata or ()).get("authorization", "")
        if not header:
            raise Unauthenticated("this call needs the operator token: metadata 'authorization: Bearer TOKEN'")
        scheme, _, given = str(header).partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token):
            raise PermissionDenied("the operator token in 'authorization' is wrong")
