"""python -m server.healthcheck: exit 0 when the server on this host reports SERVING.

The container's health check (docker-compose.yml). It asks the plaintext health-only port
(DIGITS_HEALTH_PORT), which answers whether or not the main port speaks TLS.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.settings import SETTINGS


def main() -> int:
    by_flag = {setting.flag: setting for setting in SETTINGS}
    try:
        port, host = by_flag["--health-port"].read(), by_flag["--health-host"].read()
    except ValueError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 2
    if not port:
        print("healthcheck: DIGITS_HEALTH_PORT is not set: the server has no health port to ask",
              file=sys.stderr)
        return 2
    address = f"{host}:{port}"
    with grpc.insecure_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError as exc:
            print(f"healthcheck: {address}: {exc.code().name}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    print(f"healthcheck: {address}: {status}")
    return 0 if answer.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
