"""From a validated request to its admitted Relay: the steps every inference route shares
(the gateway options within the operator's bounds, the lane, the front door's admission, the
tenancy ticket that the enqueue's one script counts; issues #13 and #17)."""

from __future__ import annotations

from aiohttp import web

from broker.auth import Caller
from broker.body import gateway_options, max_num_retries
from broker.frontdoor import FrontDoor
from broker.relay import Relay
from workers.envelopes import INGRESS_CHAT
from workers.params import GatewayOptions


def request_options(front: FrontDoor, body: bytes) -> GatewayOptions:
    """The body's gateway fields, bounded by the operator's timeout and retries."""
    return gateway_options(
        body,
        max_timeout_s=front.settings.request_timeout_s,
        max_num_retries=max_num_retries(front.config),
    )


async def admitted_relay(
    request: web.Request,
    front: FrontDoor,
    caller: Caller,
    *,
    kind: int,
    group: str,
    body: bytes,
    stream: bool,
    options: GatewayOptions,
    call_type: str,
    model: str,
    max_tokens: int | None = None,
    end_user: str | None = None,
    ingress: int = INGRESS_CHAT,
    headers: dict[str, str] | None = None,
) -> Relay:
    """The request admitted on its lane, with what it counts against and reserves."""
    lane = front.lane_for(request, options)
    front.admit(lane)
    ticket = await front.tenancy.ticket(
        caller,
        call_type=call_type,
        model=model,
        group=group,
        body_bytes=len(body),
        max_tokens=max_tokens,
        end_user=end_user,
    )
    return Relay(
        front,
        kind=kind,
        group=group,
        lane=lane,
        body=body,
        stream=stream,
        options=options,
        caller=caller,
        ticket=ticket,
        ingress=ingress,
        headers=headers,
    )
