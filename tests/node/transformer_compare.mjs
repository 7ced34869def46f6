#!/usr/bin/env node
// Checks our libtorch port of the pretrained sentence transformer (nlu/model/
// torch_transformer.h, through the helpline-transformer-embed binary) against TensorFlow.js
// running the same checkpoint's own graph (model.json), on a set of helpdesk sentences:
//   - the embedding of every sentence, from the same piece ids: cosine >= 0.99999 and no
//     value off by more than 1e-4;
//   - the piece ids: on sentences of words and single spaces, ours equal a reference unigram
//     lattice over the raw text (NFKC, spaces -> U+2581, best sum of piece scores).
//
//   node transformer_compare.mjs --bin build/bin/helpline-transformer-embed [--dir DIR]
//
// DIR: the checkpoint folder (default $HELPLINE_SENTENCE_ENCODER, else .run/sentence-encoder
// under $HELPLINE_SOURCE_DIR or the checkout). Exits 77 (skipped) when it is missing, 1 on
// any mismatch.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { loadGraphModel } from "@tensorflow/tfjs-converter";

const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const here = path.dirname(fileURLToPath(import.meta.url));
const source = process.env.HELPLINE_SOURCE_DIR || path.resolve(here, "../..");
const bin = arg("--bin");
const dir = arg("--dir", process.env.HELPLINE_SENTENCE_ENCODER || path.join(source, ".run/sentence-encoder"));
if (!bin) {
  console.error("usage: transformer_compare.mjs --bin helpline-transformer-embed [--dir DIR]");
  process.exit(2);
}
if (!fs.existsSync(path.join(dir, "model.json"))) {
  console.log(`skip: no checkpoint at ${dir} (scripts/fetch-sentence-encoder writes one)`);
  process.exit(77);
}

const sentences = [
  "I lost my card, what do I do?",
  "hello world",
  "Where is my refund? I paid 3 days ago.",
  "can i change my PIN at an ATM",
  "My order AB123456 never arrived!!!",
  "I want to speak to a human agent right now",
  "What's the exchange rate for EUR to GBP today",
  "please cancel the transfer i made yesterday",
  "THIS IS THE THIRD TIME I ASK",
  "Is it possible to top up by Apple Pay",
  "ÿ weird ☃ chars",
  "naïve café résumé",
  "the same address as last time",
  "no, the other one",
  "yes",
];

// The reference lattice: the best segmentation of the whole text by the sum of piece scores
// (a null score counts 0; of repeated pieces the later one; an uncovered character is the
// unknown piece 0, runs of them one).
const vocab = JSON.parse(fs.readFileSync(path.join(dir, "vocab.json"), "utf8"));
const ids = new Map();
for (let i = 6; i < vocab.length; i++) ids.set(vocab[i][0], i);
function referencePieces(text) {
  const chars = Array.from("\u2581" + text.normalize("NFKC").replace(/ /g, "\u2581"));
  const n = chars.length;
  const best = new Array(n + 1).fill(-Infinity);
  const from = new Array(n + 1).fill(null);
  best[0] = 0;
  for (let s = 0; s < n; s++) {
    if (best[s] === -Infinity) continue;
    let matched = false;
    for (let e = s + 1; e <= Math.min(n, s + 32); e++) {
      const id = ids.get(chars.slice(s, e).join(""));
      if (id === undefined) continue;
      matched = true;
      const score = best[s] + (vocab[id][1] ?? 0);
      if (score >= best[e]) { best[e] = score; from[e] = [id, s]; }
    }
    if (!matched && best[s] >= best[s + 1]) { best[s + 1] = best[s]; from[s + 1] = [0, s]; }
  }
  const out = [];
  for (let e = n; e > 0; e = from[e][1]) {
    const id = from[e][0];
    if (!(id === 0 && out.length && out[out.length - 1] === 0)) out.push(id);
  }
  return out.reverse();
}

const run = spawnSync(bin, ["--transformer", dir], { input: sentences.join("\n") + "\n", maxBuffer: 1 << 28 });
if (run.status !== 0) {
  console.error(`${bin} failed: ${run.stderr}`);
  process.exit(1);
}
const ours = run.stdout.toString().trim().split("\n").map((l) => JSON.parse(l));

const manifest = JSON.parse(fs.readFileSync(path.join(dir, "model.json"), "utf8"));
const model = await loadGraphModel({
  load: async () => {
    const specs = [], buffers = [];
    for (const group of manifest.weightsManifest) {
      for (const p of group.paths) buffers.push(fs.readFileSync(path.join(dir, p)));
      specs.push(...group.weights);
    }
    const all = Buffer.concat(buffers);
    return { modelTopology: manifest.modelTopology, weightSpecs: specs,
             weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.length) };
  },
});

let failures = 0, piecesCompared = 0;
for (let i = 0; i < sentences.length; i++) {
  const text = sentences[i], o = ours[i];
  const indices = tf.tensor2d(o.pieces.map((_, j) => [0, j]), [o.pieces.length, 2], "int32");
  const values = tf.tensor1d(o.pieces, "int32");
  const theirs = Array.from(await (await model.executeAsync({ indices, values })).data());
  let dot = 0, worst = 0;
  for (let j = 0; j < theirs.length; j++) {
    dot += theirs[j] * o.embedding[j];
    worst = Math.max(worst, Math.abs(theirs[j] - o.embedding[j]));
  }
  const embeddingOk = o.embedding.length === theirs.length && dot >= 0.99999 && worst <= 1e-4;
  // Our tokens split punctuation off words, so a piece the raw text would glue across a
  // punctuation mark can differ: the pieces must equal the reference on texts of words and
  // single spaces only, and are shown (not checked) elsewhere.
  const reference = referencePieces(text);
  const same = JSON.stringify(reference) === JSON.stringify(o.pieces);
  const checked = /^[\p{L}\p{N}]+( [\p{L}\p{N}]+)*$/u.test(text);
  if (checked) piecesCompared++;
  const piecesOk = !checked || same;
  if (!embeddingOk || !piecesOk) failures++;
  const piecesNote = same ? "pieces =" : `pieces ${checked ? "DIFFER" : "differ (not checked)"}: ` +
      `reference ${JSON.stringify(reference)}, ours ${JSON.stringify(o.pieces)}`;
  console.log(`${embeddingOk && piecesOk ? "ok  " : "FAIL"} cos ${dot.toFixed(7)} ` +
              `max|d| ${worst.toExponential(2)} ${piecesNote}  ${JSON.stringify(text)}`);
}
console.log(`${sentences.length} sentences, pieces compared on ${piecesCompared}, ${failures} failed`);
process.exit(failures ? 1 : 0);
