"""A minimal AWS STS for Bedrock role tests: `AssumeRole` (query protocol, XML reply).

Point botocore at it with `AWS_ENDPOINT_URL_STS=<fake base url>`. Each call issues fresh
temporary credentials (`ASIA...` key id and a session token) valid for an hour, or five
minutes for a role whose name ends in `short-lived` (inside botocore's refresh window, so
every use refreshes them: how a test proves credentials are renewed before they expire).
"""

from __future__ import annotations

import datetime
from xml.sax.saxutils import escape

from aiohttp import web

from workers.testing.bedrock_errors import request_id
from workers.testing.state import FakeState, record_request

LIFETIME_S = 3600
SHORT_LIFETIME_S = 300
_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"


def routes(state: FakeState) -> list[web.RouteDef]:
    async def sts(request: web.Request) -> web.StreamResponse:
        await record_request(request, state)
        form = await request.post()
        if "/sts/aws4_request" not in request.headers.get("Authorization", ""):
            return _error(
                403, "MissingAuthenticationToken", "Request is missing Authentication Token"
            )
        action = str(form.get("Action", ""))
        if action != "AssumeRole":
            return _error(400, "InvalidAction", f"Could not find operation {action}")
        ordinal = next(state.ids)
        return _assume_role(
            str(form.get("RoleArn", "")), str(form.get("RoleSessionName", "")), ordinal
        )

    return [web.post("/", sts)]


def _assume_role(role_arn: str, session_name: str, ordinal: int) -> web.Response:
    lifetime_s = SHORT_LIFETIME_S if role_arn.endswith("short-lived") else LIFETIME_S
    expiration = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=lifetime_s)
    role = role_arn.rpartition("/")[2]
    body = f"""<AssumeRoleResponse xmlns="{_XMLNS}">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>ASIAFAKE{ordinal:012d}</AccessKeyId>
      <SecretAccessKey>fake-secret-{ordinal}</SecretAccessKey>
      <SessionToken>fake-session-token-{ordinal}</SessionToken>
      <Expiration>{expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROAFAKE{ordinal:012d}:{escape(session_name)}</AssumedRoleId>
      <Arn>arn:aws:sts::123456789012:assumed-role/{escape(role)}/{escape(session_name)}</Arn>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>{request_id()}</RequestId></ResponseMetadata>
</AssumeRoleResponse>"""
    return web.Response(body=body.encode(), content_type="text/xml")


def _error(status: int, code: str, message: str) -> web.Response:
    body = (
        f'<ErrorResponse xmlns="{_XMLNS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{request_id()}</RequestId>"
        "</ErrorResponse>"
    )
    return web.Response(status=status, body=body.encode(), content_type="text/xml")
