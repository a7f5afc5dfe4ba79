"""OpenAI's Responses API as a client protocol (``/api/v1/responses``), translated to and from chat."""
