"""OpenAI chat chunks as the Responses event sequence, for a streamed ``/responses`` answer.

    response.created, response.in_progress
    per output item:  response.output_item.added
      reasoning:      response.reasoning_summary_part.added, response.reasoning_summary_text.delta ...,
                      response.reasoning_summary_text.done, response.reasoning_summary_part.done
      message:        response.content_part.added, response.output_text.delta ...,
                      response.output_text.done, response.content_part.done
      function_call:  response.function_call_arguments.delta ..., response.function_call_arguments.done
                      response.output_item.done
    response.completed | response.incomplete  (the whole response, usage and cost included)

A stream cut short ends with an ``error`` event and ``response.failed``. Every event carries
``sequence_number``, and ``event:`` names its type, as OpenAI sends them.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokenhub.providers.responses.items import ResponseShape, call_item, message_item, new_id, reasoning_item, status_of


class ResponsesStreamWriter:
    def __init__(self, shape: ResponseShape) -> None:
        self.shape = shape
        self.output: list[dict[str, Any]] = []  # finished items, in order
        self._seq = 0
        self._started = False
        self._open: dict[str, Any] | None = None  # the item being written
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> its function_call item
        self.finish_reason: str | None = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        response = self.shape.response("in_progress", [])
        return self._event("response.created", response=response) + self._event("response.in_progress", response=response)

    def chunks(self, chunks: list[dict[str, Any]]) -> bytes:
        out = [self.start()]
        for chunk in chunks:
            for choice in chunk.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta") or {}
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if isinstance(reasoning, str) and reasoning:
                    out.append(self._text("reasoning", reasoning))
                if isinstance(delta.get("content"), str) and delta["content"]:
                    out.append(self._text("message", delta["content"]))
                for call in delta.get("tool_calls") or ():
                    out.append(self._call(call))
                if choice.get("finish_reason"):
                    self.finish_reason = choice["finish_reason"]
        return b"".join(out)

    def _text(self, kind: str, text: str) -> bytes:
        out = b""
        if self._open is None or self._open["type"] != kind:
            out += self._close()
            item = reasoning_item("", new_id("rs")) if kind == "reasoning" else message_item("", new_id("msg"), "in_progress")
            if kind == "message":
                item["content"] = []
            self._open = {**item, "_text": ""}
            out += self._event("response.output_item.added", output_index=len(self.output), item=self._public(item))
            if kind == "reasoning":
                out += self._event("response.reasoning_summary_part.added", item_id=item["id"], output_index=len(self.output),
                                   summary_index=0, part={"type": "summary_text", "text": ""})  # fmt: skip
            else:
                out += self._event("response.content_part.added", item_id=item["id"], output_index=len(self.output), content_index=0,
                                   part={"type": "output_text", "text": "", "annotations": []})  # fmt: skip
        self._open["_text"] += text
        item_id, index = self._open["id"], len(self.output)
        if kind == "reasoning":
            return out + self._event("response.reasoning_summary_text.delta", item_id=item_id, output_index=index, summary_index=0, delta=text)
        return out + self._event("response.output_text.delta", item_id=item_id, output_index=index, content_index=0, delta=text,
                                 logprobs=[])  # fmt: skip

    def _call(self, raw: dict[str, Any]) -> bytes:
        index = raw.get("index", 0)
        function = raw.get("function") or {}
        out = b""
        item = self._calls.get(index)
        if item is None:
            out += self._close()
            item = call_item(str(raw.get("id") or new_id("call")), str(function.get("name") or ""), "", new_id("fc"), "in_progress")
            self._calls[index] = item
            self._open = item
            out += self._event("response.output_item.added", output_index=len(self.output), item=dict(item))
        elif function.get("name") and not item["name"]:
            item["name"] = function["name"]
        piece = function.get("arguments")
        if isinstance(piece, str) and piece and item is self._open:
            item["arguments"] += piece
            out += self._event("response.function_call_arguments.delta", item_id=item["id"], output_index=len(self.output), delta=piece)
        return out

    def _public(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if not k.startswith("_")}

    def _close(self) -> bytes:
        item, self._open = self._open, None
        if item is None:
            return b""
        index, out = len(self.output), b""
        if item["type"] == "reasoning":
            text = item.pop("_text")
            part = {"type": "summary_text", "text": text}
            out += self._event("response.reasoning_summary_text.done", item_id=item["id"], output_index=index, summary_index=0, text=text)
            out += self._event("response.reasoning_summary_part.done", item_id=item["id"], output_index=index, summary_index=0, part=part)
            item = reasoning_item(text, item["id"])
        elif item["type"] == "message":
            text = item.pop("_text")
            part = {"type": "output_text", "text": text, "annotations": []}
            out += self._event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0, text=text, logprobs=[])
            out += self._event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0, part=part)
            item = message_item(text, item["id"])
        else:
            out += self._event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                               arguments=item["arguments"])  # fmt: skip
            item = {**item, "status": "completed"}
        self.output.append(item)
        return out + self._event("response.output_item.done", output_index=index, item=item)

    def finish(self, usage: dict[str, Any], finish_reason: str | None) -> tuple[bytes, dict[str, Any]]:
        """The last events, and the final response object (for the store)."""
        out = self.start() + self._close()
        status, incomplete = status_of(finish_reason or self.finish_reason)
        response = self.shape.response(status, self.output, usage, incomplete)
        return out + self._event("response.completed" if status == "completed" else "response.incomplete", response=response), response

    def fail(self, code: str, message: str) -> bytes:
        out = self.start() + self._close()
        out += self._event("error", code=code, message=message, param=None)
        return out + self._event("response.failed", response=self.shape.response("failed", self.output, error={"code": code, "message": message}))


