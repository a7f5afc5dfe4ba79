// The openai Node SDK against the gateway: one chat completion, then the same streamed (with usage).
// Usage: node openai_chat.mjs <base_url> <model>; the key comes from OPENAI_API_KEY. Prints one JSON line.
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: process.env.OPENAI_API_KEY, maxRetries: 0 });
const messages = [{ role: "user", content: "say hello to the world" }];

const plain = await client.chat.completions.create({ model, messages, max_tokens: 50 });

let text = "";
let usage = null;
const stream = await client.chat.completions.create({ model, messages, max_tokens: 50, stream: true, stream_options: { include_usage: true } });
for await (const chunk of stream) {
  text += chunk.choices[0]?.delta?.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}

console.log(JSON.stringify({
  plain: { text: plain.choices[0].message.content, model: plain.model, usage: plain.usage },
  streamed: { text, usage },
}));
