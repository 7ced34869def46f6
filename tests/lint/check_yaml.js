// Parses YAML files with js-yaml and fails on the first syntax error.
// Usage: node check_yaml.js [--helm] FILE_OR_DIR...
// --helm: Helm templates; `{{ ... }}` actions are replaced by a placeholder scalar and
// lines holding only an action (if/else/end/range/define/include with nindent) are
// dropped, so that the surrounding structure is checked as plain YAML. Every document
// must then be a mapping with apiVersion and kind (templates) or any mapping (values).
'use strict';
const fs = require('fs');
const path = require('path');
// js-yaml comes from tests/node (scripts/setup runs npm ci there).
const yaml = require('module').createRequire(path.join(__dirname, '../node/package.json'))('js-yaml');

const args = process.argv.slice(2);
const helm = args[0] === '--helm';
const targets = helm ? args.slice(1) : args;

function listFiles(p) {
  const st = fs.statSync(p);
  if (st.isFile()) return [p];
  return fs.readdirSync(p).flatMap((n) => listFiles(path.join(p, n)));
}

let placeholders = 0;
function stripHelm(text) {
  const out = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    // A line that is only actions ({{- if }}, {{- end }}, {{- include ... | nindent 4 }}).
    if (/^({{-?[^}]*-?}}\s*)+$/.test(trimmed)) continue;
    // A unique placeholder per action, so that templated keys do not collide.
    out.push(line.replace(/{{-?[^}]*-?}}/g, () => `X${++placeholders}`));
  }
  return out.join('\n');
}

let files = 0;
let docs = 0;
const errors = [];
for (const target of targets) {
  for (const file of listFiles(target)) {
    if (!/\.ya?ml$/.test(file)) continue;
    files++;
    let text = fs.readFileSync(file, 'utf8');
    const isTemplate = helm && file.split(path.sep).includes('templates');
    if (isTemplate) text = stripHelm(text);
    try {
      for (const doc of yaml.loadAll(text)) {
        if (doc === null || doc === undefined) continue;
        docs++;
        if (typeof doc !== 'object' || Array.isArray(doc)) {
          errors.push(`${file}: a document is not a mapping`);
        } else if ((isTemplate || !helm) && file.indexOf('values') < 0 &&
                   path.basename(file) !== 'Chart.yaml' &&
                   (!doc.apiVersion || !doc.kind)) {
          errors.push(`${file}: a document has no apiVersion/kind`);
        }
      }
    } catch (e) {
      errors.push(`${file}: ${e.message.split('\n')[0]}`);
    }
  }
}
if (files === 0) errors.push(`no YAML files under ${targets.join(' ')}`);
for (const e of errors) console.error(e);
console.log(`${files} files, ${docs} documents, ${errors.length} errors`);
process.exit(errors.length ? 1 : 0);
