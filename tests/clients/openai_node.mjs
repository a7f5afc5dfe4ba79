// The official openai Node SDK through the gateway: chat (whole and streamed) and the Responses API.
// Run by tests/agents/test_node_sdk.py with TOKENHUB_BASE_URL, TOKENHUB_API_KEY and MODEL set; prints JSON.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.TOKENHUB_BASE_URL, apiKey: process.env.TOKENHUB_API_KEY, maxRetries: 0 });
const model = process.env.MODEL;

const whole = await client.chat.completions.create({ model, messages: [{ role: "user", content: "hello" }] });
let streamed = "";
let usage = null;
const stream = await client.chat.completions.create({
  model, messages: [{ role: "user", content: "hello #fake:tokens=5" }], stream: true, stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  streamed += chunk.choices[0]?.delta?.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
const response = await client.responses.create({ model, input: "hello" });
let failed = null;
try {
  await client.chat.completions.create({ model: "no/such-model", messages: [{ role: "user", content: "hi" }] });
} catch (err) {
  failed = { status: err.status, name: err.constructor.name };
}
console.log(JSON.stringify({
  text: whole.choices[0].message.content, cost: whole.usage.cost, model: whole.model,
  streamed, streamCost: usage?.cost, responseText: response.output_text, responseCost: response.usage.cost, failed,
}));
