"""Plumbing shared by the fake upstreams of :mod:`tokenhub.simulator` (aiohttp).

Nothing here speaks a vendor protocol; each vendor package keeps its own routes,
bodies, errors and wire framing and builds on these modules:

* :mod:`~tokenhub.simulator.common.recording`: ``Headers`` (a dict with lower-case
  keys and case-insensitive lookup), ``RecordedRequest``, ``record_request`` and
  ``read_json`` (read, parse with orjson, record — rejected requests included); the
  state bases ``RecordingState`` (``requests`` + ``reset``) and ``TrackedState``
  (adds the ``active_*``/``cancelled_*`` counters that ``tracked`` maintains);
  ``install_state`` puts a state on an app under its ``AppKey`` and the documented
  ``app["state"]`` string key;
* :mod:`~tokenhub.simulator.common.disconnects`: ``ClientGone``, ``client_gone``,
  ``sleep_unless_gone``, ``wait_until_gone``, ``abort_connection`` (a deliberate
  hang-up, flagged with ``ABORTED_KEY`` so it is not counted as a client
  cancellation), ``tracked`` and ``serve_scenario`` (``slow_first``/``hang``/``reset``
  directives + counters);
* :mod:`~tokenhub.simulator.common.streams`: the ``EventWriter`` base of the stream
  writers and ``start_event_stream``;
* :mod:`~tokenhub.simulator.common.timing`: ``stamp_start`` and ``elapsed_ms``, for
  processing-time headers;
* :mod:`~tokenhub.simulator.common.directives`: ``#fake:NAME[=VALUE]`` directives:
  ``DIRECTIVE_RE``, ``parse_directives`` and the ``Directives`` mixin giving a
  Scenario dataclass its ``parse`` classmethod, raising each fake's own error type;
  ``EXTRA_DIRECTIVES`` (a context variable) adds directives to every
  ``Directives.parse`` of the current request — how the operator simulator
  (:mod:`tokenhub.simulator.server`) injects stream faults;
* :mod:`~tokenhub.simulator.common.mounting`: mounting under a path prefix:
  ``MOUNT_PREFIX_KEY`` (set by whoever mounts the fake as a sub-application),
  ``public_base`` (the origin plus that prefix, for the media URLs a fake hands out)
  and ``local_path`` (the path without it);
* :mod:`~tokenhub.simulator.common.text`: deterministic text (``REPLY_WORDS``,
  ``REASONING_WORDS``, ``word_pieces``, ``random_id``) and malformed usage
  (``#fake:bad_usage=KIND``): ``malformed_count`` gives the output-token count a
  fake reports instead of the real one.
"""
