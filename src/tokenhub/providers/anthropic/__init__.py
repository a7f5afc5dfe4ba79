"""Anthropic Messages, both directions: spoken to Anthropic (upstream) from the gateway's OpenAI chat
shape, and answered to clients of ``/api/v1/messages`` (client side), natively or translated.

    wire.py          shapes both directions share: version, URLs, usage, stop reasons, tool-call ids
    request.py       upstream: an OpenAI chat request as a Messages request
    response.py      upstream: a Messages response as an OpenAI chat completion
    stream.py        upstream: a Messages stream's events, one at a time
    adapter.py       upstream: the ``ChatAdapter`` (request.py + response.py + stream.py)
    inbound.py       client side: a Messages request read into the OpenAI chat shape (inbound_turns.py: its turns)
    message.py       client side: an OpenAI chat completion answered as a Message
    writer.py        client side: OpenAI chat chunks written as Messages events
    responder.py     client side: the responder and its pipes (the byte pipe relays an Anthropic upstream's events)
    server_tools.py  client side: the server tools of a Messages request priced, capped or refused
"""
