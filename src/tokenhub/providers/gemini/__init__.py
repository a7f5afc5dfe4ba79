"""Google Gemini ``generateContent`` / ``streamGenerateContent?alt=sse``, spoken to Gemini (upstream) from
the gateway's OpenAI chat shape and read back into it.

    wire.py       shapes both directions share: tool-call ids carrying thought signatures, usage, finish reasons, errors
    request.py    upstream: an OpenAI chat request as a Gemini request
    response.py   upstream: a Gemini answer as an OpenAI chat completion
    stream.py     upstream: a Gemini stream's events, one at a time
    adapter.py    upstream: the ``ChatAdapter``
"""
