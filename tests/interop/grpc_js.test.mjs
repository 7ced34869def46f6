// Interop: @grpc/grpc-js with @grpc/proto-loader calling helpline.chat.v1.ChatService and
// grpc.health.v1.Health on the gateway and a stage service.
import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { env, require, sourceDir, newSessionId } from './common.mjs';

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const loaderOptions = { keepCase: true, longs: String, enums: String, defaults: true,
                        oneofs: true };
const chatProto = grpc.loadPackageDefinition(protoLoader.loadSync(
  'helpline/chat/v1/chat_service.proto',
  { ...loaderOptions, includeDirs: [path.join(sourceDir, 'protos')] }));
const healthProto = grpc.loadPackageDefinition(protoLoader.loadSync(
  'grpc/health/v1/health.proto',
  { ...loaderOptions, includeDirs: [path.join(sourceDir, 'tests/interop/protos')] }));

const credentials = grpc.credentials.createInsecure();
const chat = new chatProto.helpline.chat.v1.ChatService(env.grpc(), credentials);
const sessions = new chatProto.helpline.chat.v1.SessionService(env.grpc(), credentials);

function metadata(key = env.apiKey()) {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${key}`);
  return md;
}
const deadline = () => ({ deadline: new Date(Date.now() + 30000) });

function unary(client, method, request, md = metadata()) {
  return new Promise((resolve, reject) => {
    client[method](request, md, deadline(), (error, response) =>
      error ? reject(error) : resolve(response));
  });
}

test('Health/Check on the gateway and on a stage service', async () => {
  for (const target of [env.grpc(), env.stageGrpc('preprocess')]) {
    const health = new healthProto.grpc.health.v1.Health(target, credentials);
    const whole = await unary(health, 'Check', { service: '' }, new grpc.Metadata());
    assert.equal(whole.status, 'SERVING', target);
    health.close();
  }
  const health = new healthProto.grpc.health.v1.Health(env.grpc(), credentials);
  const service = await unary(health, 'Check', { service: 'helpline.chat.v1.ChatService' },
                              new grpc.Metadata());
  assert.equal(service.status, 'SERVING');
  await assert.rejects(unary(health, 'Check', { service: 'no.such.Service' },
                             new grpc.Metadata()),
                       (error) => error.code === grpc.status.NOT_FOUND);
  health.close();
});

test('Converse: two turns of a session, then GetSession', async () => {
  const session_id = newSessionId('grpcjs');
  const first = await unary(chat, 'Converse', { session_id, text: 'Where is my order?' });
  assert.equal(first.session_id, session_id);
  assert.equal(first.turn_index, 0);
  assert.ok(first.reply.length > 0);
  assert.ok(first.request_id.length > 0);
  const second = await unary(chat, 'Converse',
                             { session_id, text: 'The order number is A-1234567' });
  assert.equal(second.turn_index, 1);
  assert.ok(Object.values(second.state.slots).some((slot) => slot.value.includes('1234567')),
            JSON.stringify(second.state));
  assert.ok(second.timings.some((timing) => timing.stage === 'dst'),
            JSON.stringify(second.timings));

  const stored = await unary(sessions, 'GetSession', { session_id });
  assert.equal(stored.version, '2');  // uint64 as a string (longs: String)
  assert.equal(stored.turns.length, 2);
});

test('ConverseStream: deltas, then one final message', async () => {
  const call = chat.ConverseStream({ session_id: newSessionId('grpcjs-stream'),
                                     text: 'I want a refund for my order 12345678' },
                                   metadata(), deadline());
  let text = '';
  const finals = [];
  await new Promise((resolve, reject) => {
    call.on('data', (message) => {
      if (message.event === 'delta') text += message.delta;
      else if (message.event === 'final') finals.push(message.final);
    });
    call.on('error', reject);
    call.on('end', resolve);
  });
  assert.equal(finals.length, 1);
  assert.ok(text.length > 0);
  assert.equal(text, finals[0].reply);
});

test('a missing or wrong key is UNAUTHENTICATED', async () => {
  await assert.rejects(unary(chat, 'Converse', { text: 'hi' }, new grpc.Metadata()),
                       (error) => error.code === grpc.status.UNAUTHENTICATED);
  await assert.rejects(unary(chat, 'Converse', { text: 'hi' }, metadata('wrong')),
                       (error) => error.code === grpc.status.UNAUTHENTICATED);
});

test('empty text is INVALID_ARGUMENT naming the field', async () => {
  await assert.rejects(unary(chat, 'Converse', { session_id: newSessionId('bad'), text: '' }),
                       (error) => error.code === grpc.status.INVALID_ARGUMENT &&
                                  /text/.test(error.details));
});

test.after(() => {
  chat.close();
  sessions.close();
});
