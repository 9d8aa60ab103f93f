"""upload_kompromat: the signed-in user's multipart upload, encrypted before it is stored."""

from __future__ import annotations

import functions_framework

from shared.account import kompromat
from shared.http import Auth, Call, endpoint


@functions_framework.http
@endpoint(
    "upload_kompromat",
    body=None,
    auth=Auth.USER,
    raw_content_types=("multipart/form-data",),
    max_body_bytes=kompromat.max_request_bytes,
)
def upload_kompromat(call: Call[None]) -> kompromat.KompromatView:
    return kompromat.upload(call.user_id, call.request)
