"""OpenAI Chat Completions, both directions: spoken to OpenAI and every OpenAI-compatible vendor
(upstream), and answered to clients of ``/api/v1/chat/completions`` (client side).

    wire.py       shapes both directions share: usage (with our exact ``cost``), text, finish reasons, errors
    request.py    upstream: the client's request as the vendor gets it (model id, output bound, usage request)
    adapter.py    upstream: the ``ChatAdapter`` (request.py + reading answers and streams)
    stream.py     upstream: a stream's events, one at a time
    responder.py  client side: a completion or a stream answered in OpenAI's shape (pipes)
"""
