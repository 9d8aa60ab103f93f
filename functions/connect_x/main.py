"""connect_x: link the signed-in user's X account (OAuth 2.0 with PKCE), or unlink it."""

from __future__ import annotations

import functions_framework

from shared.account import x_oauth
from shared.http import Auth, Call, endpoint


@functions_framework.http
@endpoint("connect_x", body=x_oauth.ConnectXRequest, auth=Auth.USER)
def connect_x(
    call: Call[x_oauth.StartRequest | x_oauth.CallbackRequest | x_oauth.DisconnectRequest],
) -> x_oauth.StartResponse | x_oauth.ConnectionResponse:
    user_id, body = call.user_id, call.body
    if isinstance(body, x_oauth.CallbackRequest):
        return x_oauth.callback(user_id, body)
    if isinstance(body, x_oauth.DisconnectRequest):
        return x_oauth.disconnect(user_id)
    return x_oauth.start(user_id)
