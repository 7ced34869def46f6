// Shared setup of the interop scripts: where the stack is, and the npm packages installed by
// scripts/setup under tests/node/node_modules.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const sourceDir = process.env.HELPLINE_SOURCE_DIR || path.resolve(here, '../..');
export const require = createRequire(path.join(sourceDir, 'tests/node/package.json'));

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run through helpline-interop-stack)`);
  return value;
}

export const env = {
  http: () => need('HELPLINE_HTTP'),          // http://127.0.0.1:<port>
  grpc: () => need('HELPLINE_GRPC'),          // 127.0.0.1:<port>
  apiKey: () => need('HELPLINE_API_KEY'),
  stageGrpc: (stage) => need(`HELPLINE_${stage.toUpperCase()}_GRPC`),
};

export function newSessionId(prefix) {
  return `${prefix}-${Math.random().toString(16).slice(2, 10)}`;
}
