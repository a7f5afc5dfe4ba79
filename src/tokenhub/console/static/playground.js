// Playground: streaming chat, image and video forms. The requests go to /playground/* (session and
// CSRF token, the form's own hidden field), which run them through the API with the user's
// "Playground" key; the answers are the API's own. Strings come from data- attributes.
(function () {
  "use strict";
  var root = document.querySelector("[data-playground]");
  if (!root) return;

  function say(name, values) {
    var text = root.getAttribute("data-" + name) || "";
    Object.keys(values || {}).forEach(function (key) { text = text.split("{" + key + "}").join(values[key]); });
    return text;
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;  // always text: nothing from an answer becomes markup
    return node;
  }

  // The exact decimal text of "cost" in a JSON line (JSON.parse would turn it into a float).
  function costText(raw) {
    var match = /"cost"\s*:\s*"?(-?[0-9.]+)/.exec(raw);
    return match ? "$" + match[1] : "";
  }

  function formBody(form, extra) {
    var body = new URLSearchParams(new FormData(form));
    Object.keys(extra || {}).forEach(function (key) { body.set(key, extra[key]); });
    return body;
  }

  // An error answer in the API's format, or a page (the session ended): one line of text.
  function errorOf(response, raw) {
    try {
      var body = JSON.parse(raw);
      if (body && body.error && body.error.message) return body.error.message;
    } catch (e) { /* not JSON */ }
    if (response.status === 401 || response.status === 403 || response.redirected) return say("signed-out");
    return response.status + " " + response.statusText;
  }

  async function post(url, body, signal) {
    return fetch(url, { method: "POST", body: body, credentials: "same-origin", signal: signal, headers: { Accept: "application/json, text/event-stream" } });
  }

  // -- chat ------------------------------------------------------------------------------------
  var chat = document.querySelector("form[data-chat-form]");
  if (chat) {
    var transcript = chat.querySelector(".transcript");
    var input = chat.elements.content;
    var send = chat.querySelector("[data-send]");
    var stop = chat.querySelector("[data-stop]");
    var history = [];
    var controller = null;

    var addTurn = function (role, text) {
      var turn = element("div", "turn " + role);
      turn.appendChild(element("div", "who", say(role === "user" ? "you" : "assistant")));
      var body = element("p", "text", text);
      turn.appendChild(body);
      transcript.appendChild(turn);
      transcript.scrollTop = transcript.scrollHeight;
      return { turn: turn, body: body };
    };
    var addMeta = function (turn, text, isError) {
      var meta = element("p", "meta" + (isError ? " error-text" : ""), text);
      meta.setAttribute("data-testid", isError ? "reply-error" : "reply-usage");
      turn.appendChild(meta);
      return meta;
    };

    var busy = function (on) {
      send.disabled = on;
      stop.hidden = !on;
    };

    // Reads the SSE stream; calls onEvent(rawJson) for each data line but [DONE].
    var readStream = async function (response, onEvent) {
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) break;
        buffer += decoder.decode(chunk.value, { stream: true });
        var lines = buffer.split("\n");
        buffer = lines.pop();
        lines.forEach(function (line) {
          line = line.replace(/\r$/, "");
          if (line.indexOf("data:") !== 0) return;
          var data = line.slice(5).trim();
          if (data && data !== "[DONE]") onEvent(data);
        });
      }
    };

    chat.addEventListener("submit", async function (event) {
      event.preventDefault();
      var text = input.value.trim();
      if (!text || controller) return;
      var messages = [];
      var system = chat.elements.system.value.trim();
      if (system) messages.push({ role: "system", content: system });
      messages = messages.concat(history, [{ role: "user", content: text }]);
      addTurn("user", text);
      input.value = "";
      var reply = addTurn("assistant", "");
      reply.body.textContent = say("waiting");
      var answer = "";
      var failed = false;
      controller = new AbortController();
      busy(true);
      try {
        var response = await post(chat.action, formBody(chat, { messages: JSON.stringify(messages) }), controller.signal);
        var type = response.headers.get("Content-Type") || "";
        if (!response.ok || type.indexOf("text/event-stream") !== 0) {
          failed = true;
          reply.body.textContent = "";
          addMeta(reply.turn, say("error", { message: errorOf(response, await response.text()) }), true);
        } else {
          reply.body.textContent = "";
          await readStream(response, function (raw) {
            var event = JSON.parse(raw);
            if (event.error) {
              failed = true;
              addMeta(reply.turn, say("error", { message: event.error.message || "" }), true);
              return;
            }
            var choice = event.choices && event.choices[0];
            if (choice && choice.delta && typeof choice.delta.content === "string") {
              answer += choice.delta.content;
              reply.body.textContent = answer;
              transcript.scrollTop = transcript.scrollHeight;
            }
            if (event.usage) {
              addMeta(reply.turn, say("usage", {
                prompt: event.usage.prompt_tokens, completion: event.usage.completion_tokens, cost: costText(raw)
              }));
            }
          });
        }
      } catch (error) {
        failed = true;
        addMeta(reply.turn, error.name === "AbortError" ? say("stopped") : say("error", { message: error.message }), error.name !== "AbortError");
      } finally {
        controller = null;
        busy(false);
        input.focus();
      }
      if (!failed) {
        history.push({ role: "user", content: text }, { role: "assistant", content: answer });
      }
    });

    stop.addEventListener("click", function () { if (controller) controller.abort(); });
    chat.querySelector("[data-clear]").addEventListener("click", function () {
      if (controller) controller.abort();
      history = [];
      transcript.textContent = "";
      input.focus();
    });
    // Enter sends, Shift+Enter is a new line.
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        chat.requestSubmit();
      }
    });
  }

  // -- choices that depend on the model (sizes, durations, resolutions, modes) -----------------
  function fill(select, values) {
    var keep = select.value;
    while (select.options.length > 1) select.remove(1);
    values.forEach(function (value) { select.add(new Option(value, value)); });
    select.value = values.indexOf(keep) >= 0 ? keep : "";
  }
  function words(option, name) {
    var text = option ? option.getAttribute("data-" + name) || "" : "";
    return text ? text.split(" ") : [];
  }

  function showError(box, response, raw) {
    box.textContent = "";
    box.appendChild(element("p", "error-text", say("error", { message: errorOf(response, raw) })));
  }

  function submitting(form, on) {
    form.querySelector("button[type=submit]").disabled = on;
  }

  // -- images ----------------------------------------------------------------------------------
  var images = document.querySelector("form[data-image-form]");
  if (images) {
    var imageModel = images.elements.model;
    var syncSizes = function () { fill(images.elements.size, words(imageModel.selectedOptions[0], "sizes")); };
    imageModel.addEventListener("change", syncSizes);
    syncSizes();
    var imageBox = images.parentNode.querySelector("[data-testid='image-result']");
    images.addEventListener("submit", async function (event) {
      event.preventDefault();
      submitting(images, true);
      imageBox.textContent = say("waiting");
      try {
        var response = await post(images.action, formBody(images));
        var raw = await response.text();
        if (!response.ok) return showError(imageBox, response, raw);
        var body = JSON.parse(raw);
        imageBox.textContent = "";
        imageBox.appendChild(element("p", "meta", say("images-done", { count: body.data.length, cost: costText(raw) })));
        var list = element("ul");
        body.data.forEach(function (item, index) {
          var link = element("a", "", say("open-image", { number: index + 1 }));
          link.href = item.url;
          link.rel = "noopener noreferrer";
          link.target = "_blank";
          link.setAttribute("data-testid", "image-url");
          var li = element("li");
          li.appendChild(link);
          li.appendChild(element("code", "url", " " + item.url));
          list.appendChild(li);
        });
        imageBox.appendChild(list);
      } catch (error) {
        imageBox.textContent = say("error", { message: error.message });
      } finally {
        submitting(images, false);
      }
    });
  }

  // -- videos: submit, then poll the task until it ends ----------------------------------------
  var videos = document.querySelector("form[data-video-form]");
  if (videos) {
    var videoModel = videos.elements.model;
    var syncVideo = function () {
      var option = videoModel.selectedOptions[0];
      var durations = words(option, "durations").map(Number);
      var duration = videos.elements.duration;
      if (durations.length) {
        duration.min = Math.min.apply(null, durations);
        duration.max = Math.max.apply(null, durations);
        var value = Number(duration.value) || 5;
        duration.value = Math.min(Math.max(value, Number(duration.min)), Number(duration.max));
      }
      fill(videos.elements.resolution, words(option, "resolutions"));
      fill(videos.elements.mode, words(option, "modes"));
    };
    videoModel.addEventListener("change", syncVideo);
    syncVideo();
    var videoBox = videos.parentNode.querySelector("[data-testid='video-result']");
    var pollMs = 2000;

    var showTask = function (task, raw) {
      videoBox.textContent = "";
      var id = element("p", "meta");
      id.appendChild(element("code", "", task.id));
      id.setAttribute("data-testid", "video-task");
      videoBox.appendChild(id);
      var status = element("p", "", say("video-status", { status: task.status }));
      status.setAttribute("data-testid", "video-status");
      status.setAttribute("data-status", task.status);
      videoBox.appendChild(status);
      if (task.error && task.error.message) videoBox.appendChild(element("p", "error-text", say("error", { message: task.error.message })));
      if (task.data && task.data[0] && task.data[0].video_url) {
        var link = element("a", "", say("open-video"));
        link.href = task.data[0].video_url;
        link.rel = "noopener noreferrer";
        link.target = "_blank";
        link.setAttribute("data-testid", "video-url");
        videoBox.appendChild(link);
      }
      if (task.status === "succeeded") {
        var seconds = task.usage && task.usage.duration_seconds;
        videoBox.appendChild(element("p", "meta", say("video-cost", { seconds: seconds, cost: costText(raw) })));
      }
    };

    var poll = async function (taskId) {
      for (;;) {
        await new Promise(function (resolve) { setTimeout(resolve, pollMs); });
        var response = await fetch("/playground/videos/" + encodeURIComponent(taskId), { credentials: "same-origin", headers: { Accept: "application/json" } });
        var raw = await response.text();
        if (!response.ok) return showError(videoBox, response, raw);
        var task = JSON.parse(raw);
        showTask(task, raw);
        if (task.status !== "queued" && task.status !== "running") return;
      }
    };

    videos.addEventListener("submit", async function (event) {
      event.preventDefault();
      submitting(videos, true);
      videoBox.textContent = say("waiting");
      try {
        var response = await post(videos.action, formBody(videos));
        var raw = await response.text();
        if (!response.ok) return showError(videoBox, response, raw);
        var task = JSON.parse(raw);
        showTask(task, raw);
        submitting(videos, false);
        if (task.status === "queued" || task.status === "running") await poll(task.id);
      } catch (error) {
        videoBox.textContent = say("error", { message: error.message });
      } finally {
        submitting(videos, false);
      }
    });
  }
})();
