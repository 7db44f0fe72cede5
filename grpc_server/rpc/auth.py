"""Bearer-token authentication as a server interceptor (``authorization: Bearer <token>`` metadata).

Calls without a valid token get UNAUTHENTICATED. Admin calls (``ADMIN_METHODS``: model reload) need an
admin token; a scoring token gets PERMISSION_DENIED there. Admin tokens are good for every call. Health
checks stay open by default so load balancers and Kubernetes probes need no secret (``auth_health``
closes them). Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from logwarden.grpc_server.rpc.handlers import same_shape
from logwarden.grpc_server.security import TokenCheck

HEALTH_PREFIX = "/grpc.health.v1.Health/"
ADMIN_METHODS = ("/logwarden.v1.ModelService/ReloadModel",)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        tokens: Sequence[str],
        open_prefixes: Sequence[str] = (HEALTH_PREFIX,),
        admin_tokens: Sequence[str] = (),
        admin_methods: Sequence[str] = ADMIN_METHODS,
    ) -> None:
        self._check = TokenCheck([*tokens, *admin_tokens])
        self._admin = TokenCheck(admin_tokens)
        self._open = tuple(open_prefixes)
        self._admin_methods = frozenset(admin_methods)

    @staticmethod
    def _authorization(metadata) -> str | bytes | None:
        for key, value in metadata or ():
            if key == "authorization":
                return value
        return None

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        if handler is None or details.method.startswith(self._open):
            return handler
        authorization = self._authorization(details.invocation_metadata)
        if not self._check.accepts(authorization):
            return same_shape(handler, _refuse(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token"))
        if details.method in self._admin_methods and not self._admin.accepts(authorization):
            return same_shape(
                handler, _refuse(grpc.StatusCode.PERMISSION_DENIED, "this call needs an admin token (admin_tokens)")
            )
        return handler


def _refuse(code: grpc.StatusCode, message: str):
    async def refuse(request, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    return refuse
