// Interop: the official `openai` npm SDK against the gateway's /v1 API.
import test from 'node:test';
import assert from 'node:assert/strict';
import { env, require, newSessionId } from './common.mjs';

const { OpenAI } = require('openai');

function client(apiKey = env.apiKey()) {
  return new OpenAI({ apiKey, baseURL: `${env.http()}/v1`, maxRetries: 0, timeout: 30000 });
}

test('models.list names the model', async () => {
  const models = await client().models.list();
  const ids = [];
  for await (const model of models) ids.push(model.id);
  assert.ok(ids.length >= 1, 'no models');
  assert.ok(ids.includes('helpline'), `models: ${ids}`);
});

test('non-streaming chat.completions.create, two turns of one session', async () => {
  const session = newSessionId('openai');
  const options = { headers: { 'X-Helpline-Session': session } };
  const first = await client().chat.completions.create(
    { model: 'helpline', messages: [{ role: 'user', content: 'Hi, where is my order?' }] },
    options);
  assert.equal(first.object, 'chat.completion');
  assert.equal(typeof first.id, 'string');
  assert.equal(first.choices.length, 1);
  assert.equal(first.choices[0].index, 0);
  assert.equal(first.choices[0].message.role, 'assistant');
  assert.ok(first.choices[0].message.content.length > 0, 'empty reply');
  assert.ok(['stop', 'length'].includes(first.choices[0].finish_reason),
            first.choices[0].finish_reason);
  assert.equal(typeof first.usage.prompt_tokens, 'number');
  assert.equal(typeof first.usage.completion_tokens, 'number');
  assert.equal(first.usage.total_tokens,
               first.usage.prompt_tokens + first.usage.completion_tokens);
  // Helpline's own fields ride along in `helpline`.
  assert.ok(first.helpline, 'no helpline object');

  const second = await client().chat.completions.create(
    { model: 'helpline', messages: [{ role: 'user', content: 'It is order A-1234567' }],
      max_tokens: 64, temperature: 0 },
    options);
  assert.ok(second.choices[0].message.content.length > 0);
  assert.equal(second.helpline.turn_index, 1, JSON.stringify(second.helpline));
  assert.ok(JSON.stringify(second.helpline.state).includes('1234567'),
            JSON.stringify(second.helpline.state));
});

test('streaming chat.completions.create yields chunks, then the end', async () => {
  const stream = await client().chat.completions.create({
    model: 'helpline',
    messages: [{ role: 'user', content: 'I want to return an item I bought' }],
    stream: true,
  });
  let text = '';
  let chunks = 0;
  let finishReason = null;
  let id = null;
  for await (const chunk of stream) {
    chunks += 1;
    assert.equal(chunk.object, 'chat.completion.chunk');
    id = id ?? chunk.id;
    assert.equal(chunk.id, id, 'chunk ids differ');
    const choice = chunk.choices[0];
    if (!choice) continue;  // e.g. a usage-only chunk
    if (choice.delta?.content) text += choice.delta.content;
    if (choice.finish_reason) finishReason = choice.finish_reason;
  }
  assert.ok(chunks >= 2, `only ${chunks} chunks`);
  assert.ok(text.length > 0, 'no streamed text');
  assert.ok(['stop', 'length'].includes(finishReason), `finish_reason ${finishReason}`);
});

test('stateless request: messages are the history', async () => {
  const completion = await client().chat.completions.create({
    model: 'helpline',
    messages: [
      { role: 'user', content: 'Where is my order?' },
      { role: 'assistant', content: 'Could you give me the order number?' },
      { role: 'user', content: [{ type: 'text', text: 'Sure, 12345678' }] },
    ],
  });
  assert.ok(completion.choices[0].message.content.length > 0);
});

test('a wrong API key is an AuthenticationError (401)', async () => {
  await assert.rejects(
    client('not-a-key').chat.completions.create(
      { model: 'helpline', messages: [{ role: 'user', content: 'hi' }] }),
    (error) => {
      assert.equal(error.status, 401);
      assert.ok(error instanceof require('openai').AuthenticationError);
      return true;
    });
});

test('empty text is a BadRequestError (400) naming the field', async () => {
  await assert.rejects(
    client().chat.completions.create(
      { model: 'helpline', messages: [{ role: 'user', content: '' }] }),
    (error) => {
      assert.equal(error.status, 400);
      assert.ok(error instanceof require('openai').BadRequestError);
      assert.match(error.message, /messages/);
      return true;
    });
});
