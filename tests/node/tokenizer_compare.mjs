#!/usr/bin/env node
// Compares our GPT-2 BPE encoder (lm/tokenizer, through the helpline-tokenize binary) with
// two independent JavaScript GPT-2 encoders from npm, id by id, on a generated corpus:
//   js-tiktoken 1.0.21 (gpt2 ranks shipped in the package) and gpt-3-encoder 1.1.4.
//
//   node tokenizer_compare.mjs --bin build/bin/helpline-tokenize [--dir GPT2_DIR]
//        [--count 4000] [--seed 20240601] [--dump corpus.jsonl]
//   node tokenizer_compare.mjs --bin ... --bench [--bench-runs 5] [--dump bench.jsonl]
//
// Compare mode exits 1 on any id that differs from js-tiktoken's, or from gpt-3-encoder's
// where the two npm encoders agree with each other. Bench mode encodes the same few MB of
// dialogue text (from shared/data, else the generated corpus) with all three in one run and
// prints MB/s and tokens/s side by side (median of --bench-runs runs; loading excluded).
//
// The corpus is seeded (same seed, same strings). It leaves out two characters on purpose:
// U+FEFF, which JavaScript's \s matches but the White_Space property that GPT-2's Python
// `regex` uses does not, and U+0085 (NEL), which White_Space has and JavaScript's \s lacks.
// On those the npm encoders split text differently from GPT-2 itself, and ours follows
// GPT-2 (see lm/tokenizer/README.md). It also sticks to characters assigned long ago, so
// that the Unicode versions of node's ICU and the system ICU agree on \p{L} and \p{N}.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";

import { Tiktoken } from "js-tiktoken/lite";
import gpt2Ranks from "js-tiktoken/ranks/gpt2";

const require = createRequire(import.meta.url);
const gpt3Encoder = require("gpt-3-encoder");

const here = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const args = { count: 4000, seed: 20240601, benchRuns: 5, bench: false };
  for (let i = 2; i < argv.length; ++i) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--bin") args.bin = value();
    else if (a === "--dir") args.dir = value();
    else if (a === "--count") args.count = Number(value());
    else if (a === "--seed") args.seed = Number(value());
    else if (a === "--dump") args.dump = value();
    else if (a === "--bench") args.bench = true;
    else if (a === "--bench-runs") args.benchRuns = Number(value());
    else throw new Error(`unknown argument ${a}`);
  }
  if (!args.bin) throw new Error("--bin PATH_TO_helpline-tokenize is required");
  const source = process.env.HELPLINE_SOURCE_DIR ?? path.resolve(here, "..", "..");
  const shared = process.env.HELPLINE_SHARED_DIR || path.resolve(source, "..", "shared");
  args.dir ??= process.env.HELPLINE_GPT2_BPE_DIR || path.resolve(shared, "data", "gpt2_bpe");
  args.dataDir = path.resolve(args.dir, "..");
  return args;
}

// --- A seeded generator (mulberry32). ---
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  const pick = (xs) => xs[int(xs.length)];
  const chance = (p) => next() < p;
  return { next, int, pick, chance };
}

function fromRanges(ranges) {
  const chars = [];
  for (const [lo, hi] of ranges) for (let c = lo; c <= hi; ++c) chars.push(String.fromCodePoint(c));
  return chars;
}

const WORDS = (
  "the a to and of I you my your order refund card account please help can could would " +
  "cancel change delivery address payment invoice shipping track status thanks hello hi " +
  "problem issue email phone number password reset login app website store item package " +
  "return exchange size color price discount coupon code week today tomorrow yesterday " +
  "customer service agent manager wait waiting still never received damaged wrong charged " +
  "twice bank transfer subscription plan upgrade downgrade OK Sure Yes No Hello Thanks " +
  "GPT Unicode tokenizer byte-level encoding JSON HTTP URL iPhone macOS McDonald O'Brien"
).split(" ");
const CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE",
  "'M", "'LL", "'D", "'", "''", "\u2019s", "\u2019ll", "'x", "'sup"];
const PUNCT = [".", ",", "!", "?", "...", "!!", "??", ":", ";", "-", "--", "\u2014", "(", ")",
  "\"", "'", "#", "@", "$", "%", "&", "*", "/", "\\", "[", "]", "{", "}", "<", ">", "|", "~",
  "`", "^", "=", "+", "_", ",,", ",,,", "\u2026", "\u00ab", "\u00bb", "\u201c", "\u201d"];
const SPACES = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r\n\r\n", "\r",
  "\u000b", "\u000c", "\u00a0", "\u00a0\u00a0", " \u00a0", "\u3000", "\u2002", "\u2003",
  "\u2009", "\u200a", "\u202f", "\u205f", "\u1680", "\u2028", "\u2029", " \n ", "\n \n", "\t \t"];
const CJK = fromRanges([[0x4e00, 0x4fff], [0x5b57, 0x5bff], [0x6211, 0x62ff], [0x8ba2, 0x8bff]]);
const CJK_PUNCT = ["\uff0c", "\u3002", "\uff1f", "\uff01", "\u3001", "\uff1a", "\u300c", "\u300d", "\uff08", "\uff09"];
const KANA = fromRanges([[0x3041, 0x3093], [0x30a1, 0x30f3]]);
const HANGUL = fromRanges([[0xac00, 0xad00]]);
const CYRILLIC = fromRanges([[0x0410, 0x044f]]);
const GREEK = fromRanges([[0x0391, 0x03a1], [0x03a3, 0x03c9]]);
const ARABIC = fromRanges([[0x0627, 0x063a], [0x0641, 0x064a]]);
const HEBREW = fromRanges([[0x05d0, 0x05ea]]);
const DEVANAGARI = fromRanges([[0x0905, 0x0939]]);
const DEVANAGARI_MARKS = fromRanges([[0x093e, 0x094c]]);
const THAI = fromRanges([[0x0e01, 0x0e30]]);
const LATIN_ACCENTED = fromRanges([[0x00c0, 0x00d6], [0x00d8, 0x00f6], [0x00f8, 0x017f]]);
const COMBINING = fromRanges([[0x0300, 0x0315]]);
const DIGITS_EXOTIC = fromRanges([[0x0660, 0x0669], [0xff10, 0xff19], [0x00b2, 0x00b3],
  [0x00bc, 0x00be], [0x2160, 0x216b], [0x2460, 0x2473]]);
const EMOJI = ["\u{1F600}", "\u{1F602}", "\u{1F44D}", "\u{1F44B}\u{1F3FD}", "\u2764\uFE0F",
  "\u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466}", "\u{1F469}\u200D\u{1F4BB}",
  "\u{1F3F3}\uFE0F\u200D\u{1F308}", "\u{1F1EF}\u{1F1F5}", "\u{1F1FA}\u{1F1F8}", "#\uFE0F\u20E3",
  "1\uFE0F\u20E3", "\u{1F9D1}\u{1F3FF}\u200D\u{1F692}", "\u2705", "\u{1F525}", "\u{1F64F}\u{1F3FB}",
  "\u{1F6D2}", "\u{1F4E6}", "\u{1F622}", "\u2615", "\u{1F1EC}\u{1F1E7}", "\u{1F44D}\u{1F3FE}"];
const TLDS = ["com", "org", "io", "co.uk", "de", "cn"];

function makeCorpus(seed, count) {
  const r = rng(seed);
  const word = () => {
    let w = r.pick(WORDS);
    if (r.chance(0.1)) w = w.toUpperCase();
    else if (r.chance(0.15)) w = w[0].toUpperCase() + w.slice(1);
    return w;
  };
  const several = (xs, lo, hi) => {
    let s = "";
    for (let i = lo + r.int(hi - lo + 1); i > 0; --i) s += r.pick(xs);
    return s;
  };
  const number = () => {
    switch (r.int(8)) {
      case 0: return String(r.int(10));
      case 1: return String(r.int(100000));
      case 2: return `${r.int(1000)}.${r.int(100000)}`;
      case 3: return `${r.int(10)},${String(r.int(1000)).padStart(3, "0")},${String(r.int(1000)).padStart(3, "0")}`;
      case 4: return `20${10 + r.int(20)}-0${1 + r.int(9)}-${10 + r.int(18)}`;
      case 5: return `+1 (${100 + r.int(900)}) ${100 + r.int(900)}-${1000 + r.int(9000)}`;
      case 6: return several("0123456789".split(""), 20, 90);  // Long digit runs.
      default: return `#${r.int(99999)}`;
    }
  };
  const url = () => {
    const host = `${several("abcdefghijklmnopqrstuvwxyz".split(""), 3, 10)}.${r.pick(TLDS)}`;
    const pathPart = several(["/", "a", "b", "order", "id", "-", "_", "1", "2", "%20", "?q=", "&x=", "#top"], 2, 12);
    return r.pick([`https://${host}${pathPart}`, `http://www.${host}/`, `user.name+tag@${host}`,
      `ftp://${host}:21${pathPart}`]);
  };
  const code = () => r.pick([
    "int main() {\n  return 0;\n}\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "def f(x):\n    return x ** 2  # square\n",
    "const x = {a: 1, 'b': [2, 3]};\n",
    "if (a && b || !c) { throw new Error(\"bad\"); }",
    "SELECT * FROM orders WHERE id = 42;",
    "    \n        \n",
    "x=1;y=2;;z==3!==4",
    "<div class=\"a\">Hi&nbsp;there</div>",
    "#include <vector>\nstd::vector<int32_t> ids;\n",
    "{\"ids\":[1,2,3],\"text\":\"a\\nb\"}",
    "// TODO(me): fix   this\r\n",
  ]);
  const mixedScript = () => {
    const script = r.int(11);
    const pools = [CYRILLIC, GREEK, ARABIC, HEBREW, THAI, HANGUL, KANA, LATIN_ACCENTED, CJK];
    if (script < pools.length) return several(pools[script], 1, 8);
    if (script === 9) {  // Devanagari letters with vowel signs (marks, not letters).
      let s = "";
      for (let i = 1 + r.int(5); i > 0; --i) s += r.pick(DEVANAGARI) + (r.chance(0.6) ? r.pick(DEVANAGARI_MARKS) : "");
      return s;
    }
    return r.pick(["e", "a", "o", "n"]) + r.pick(COMBINING) + (r.chance(0.3) ? r.pick(COMBINING) : "");
  };
  const chinese = () => {
    let s = "";
    for (let i = 1 + r.int(4); i > 0; --i) {
      s += several(CJK, 1, 10);
      s += r.chance(0.6) ? r.pick(CJK_PUNCT) : r.pick(["", " ", "2", "12", "A", "ok", "\u{1F600}"]);
    }
    return s;
  };
  const longPiece = () => r.pick([
    "=".repeat(20 + r.int(200)), "-".repeat(30 + r.int(300)), "!".repeat(50 + r.int(100)),
    "a".repeat(40 + r.int(200)), " ".repeat(40 + r.int(100)) + "x", "\n".repeat(60 + r.int(60)),
    several("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".split(""), 50, 300),
    several("0123456789abcdef".split(""), 64, 128), several(["ha", "Ha", "HA"], 30, 80),
    several(CJK, 60, 200), several(EMOJI, 20, 40), several(["\u00e9", "\u00fc", "\u00df"], 30, 60),
    several([",", ",,", "\",", ",\""], 20, 60),
  ]);
  const special = () => r.pick(["<|endoftext|>", "<|endoftext|", "<|", "|>", "<|im_start|>"]);
  const parts = [
    [24, word], [10, () => r.pick(CONTRACTIONS)], [12, () => r.pick(PUNCT)],
    [14, () => r.pick(SPACES)], [6, number], [3, url], [2, code], [6, mixedScript],
    [6, chinese], [5, () => r.pick(EMOJI)], [2, () => r.pick(DIGITS_EXOTIC)], [1, longPiece],
    [1, special],
  ];
  const total = parts.reduce((s, [w]) => s + w, 0);
  const part = () => {
    let x = r.int(total);
    for (const [w, f] of parts) {
      if (x < w) return f();
      x -= w;
    }
    return "";
  };

  const texts = ["", " ", "\n", "Hello world", "I'm here.", "  leading", "trailing  ", "\r\n\r\n"];
  while (texts.length < count) {
    const kind = r.int(10);
    let s = "";
    if (kind < 6) {
      // Sentence-like: words separated by single spaces, with occasional other parts.
      for (let n = 1 + r.int(25); n > 0; --n) {
        s += r.chance(0.75) ? (s ? " " : "") + word() : part();
      }
    } else {
      // Anything next to anything.
      for (let n = 1 + r.int(20); n > 0; --n) s += part();
    }
    texts.push(s);
  }
  for (const t of texts) {
    if (t.includes("\ufeff") || t.includes("\u0085")) throw new Error("corpus must avoid U+FEFF and U+0085");
  }
  return texts;
}

// Real dialogue text for the benchmark: English (bitext responses, MultiWOZ) and Chinese
// (CrossWOZ) from shared/data, about 3 MB; null when the data is not there.
function dialogueTexts(dataDir) {
  const texts = [];
  try {
    const bitext = fs.readFileSync(path.join(dataDir, "bitext_cs_responses_sample", "train.jsonl"), "utf8");
    for (const line of bitext.split("\n")) {
      if (!line) continue;
      const j = JSON.parse(line);
      texts.push(j.instruction, j.response);
    }
    const crosswoz = JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(dataDir, "crosswoz", "train_from_val.json.gz"))));
    for (const d of Object.values(crosswoz)) for (const m of d.messages ?? []) texts.push(m.content);
    const multiwoz = JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(dataDir, "multiwoz21", "train_from_val.json.gz"))));
    for (const d of Object.values(multiwoz)) for (const m of d.log ?? []) texts.push(m.text);
  } catch (e) {
    console.error(`dialogue data not used (${e.message})`);
    return null;
  }
  return texts.filter((t) => typeof t === "string" && t.length > 0);
}

function runOurs(args, texts, extra = []) {
  const input = texts.map((text) => JSON.stringify({ text })).join("\n") + "\n";
  const res = spawnSync(args.bin, ["--dir", args.dir, ...extra], {
    input, maxBuffer: 1 << 30, encoding: "utf8",
  });
  if (res.error) throw res.error;
  if (res.status !== 0) throw new Error(`${args.bin} exited ${res.status}: ${res.stderr}`);
  return res.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

function firstDifference(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; ++i) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function compare(args) {
  const texts = makeCorpus(args.seed, args.count);
  if (args.dump) fs.writeFileSync(args.dump, texts.map((text) => JSON.stringify({ text })).join("\n") + "\n");
  const tiktoken = new Tiktoken(gpt2Ranks);
  const ours = runOurs(args, texts).map((x) => x.ids);
  if (ours.length !== texts.length) throw new Error(`got ${ours.length} lines for ${texts.length} texts`);

  let ids = 0, chars = 0, vsTiktoken = 0, vsGpt3 = 0, npmDisagree = 0, gpt3Excused = 0;
  const shown = [];
  for (let i = 0; i < texts.length; ++i) {
    const text = texts[i];
    const tk = tiktoken.encode(text, [], []);
    const g3 = gpt3Encoder.encode(text);
    const npmAgree = firstDifference(tk, g3) < 0;
    if (!npmAgree) ++npmDisagree;
    ids += ours[i].length;
    chars += [...text].length;
    const dTk = firstDifference(ours[i], tk);
    const dG3 = firstDifference(ours[i], g3);
    if (dTk >= 0) ++vsTiktoken;
    if (dG3 >= 0) {
      if (npmAgree) ++vsGpt3;
      else ++gpt3Excused;
    }
    if ((dTk >= 0 || (dG3 >= 0 && npmAgree)) && shown.length < 8) {
      const at = dTk >= 0 ? dTk : dG3;
      shown.push(`  #${i} ${JSON.stringify(text).slice(0, 200)}\n` +
        `     first difference at id ${at}: ours ${JSON.stringify(ours[i].slice(at, at + 6))} ` +
        `js-tiktoken ${JSON.stringify(tk.slice(at, at + 6))} gpt-3-encoder ${JSON.stringify(g3.slice(at, at + 6))}`);
    }
  }
  console.log(`corpus: ${texts.length} strings (seed ${args.seed}), ${chars} code points, ${ids} ids from ours`);
  console.log(`mismatching strings: vs js-tiktoken ${vsTiktoken}, vs gpt-3-encoder ${vsGpt3}` +
    ` (+${gpt3Excused} where gpt-3-encoder also disagrees with js-tiktoken; the npm encoders disagree on ${npmDisagree})`);
  for (const line of shown) console.log(line);
  if (vsTiktoken > 0 || vsGpt3 > 0) {
    console.log("FAIL");
    return 1;
  }
  console.log("PASS: every id equals js-tiktoken's" + (gpt3Excused ? "" : " and gpt-3-encoder's"));
  return 0;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function bench(args) {
  let texts = dialogueTexts(args.dataDir);
  let source = "shared/data dialogue text (bitext responses, MultiWOZ, CrossWOZ)";
  if (!texts) {
    texts = makeCorpus(args.seed, 20000);
    source = "generated corpus";
  }
  if (args.dump) fs.writeFileSync(args.dump, texts.map((text) => JSON.stringify({ text })).join("\n") + "\n");
  const bytes = texts.reduce((s, t) => s + Buffer.byteLength(t, "utf8"), 0);
  console.log(`bench text: ${source}: ${texts.length} strings, ${(bytes / 1e6).toFixed(2)} MB; median of ${args.benchRuns} runs`);

  const timeJs = (encode, runs) => {
    const seconds = [];
    let tokens = 0;
    for (let r = 0; r < runs; ++r) {
      tokens = 0;
      const t0 = process.hrtime.bigint();
      for (const t of texts) tokens += encode(t).length;
      seconds.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    return { tokens, median_s: median(seconds) };
  };
  const tiktoken = new Tiktoken(gpt2Ranks);
  const rows = [];
  const ours = runOurs(args, texts, ["--bench-runs", String(args.benchRuns)])[0];
  rows.push(["ours (helpline-tokenize, 1 thread)", ours.tokens, ours.median_s]);
  const tk = timeJs((t) => tiktoken.encode(t, [], []), args.benchRuns);
  rows.push(["js-tiktoken 1.0.21", tk.tokens, tk.median_s]);
  // gpt-3-encoder keeps a word cache: the first run fills it, later runs are cache hits.
  const g3 = timeJs((t) => gpt3Encoder.encode(t), args.benchRuns);
  rows.push(["gpt-3-encoder 1.1.4 (warm cache)", g3.tokens, g3.median_s]);

  console.log("encoder                              MB/s     Mtokens/s  tokens      median s");
  for (const [name, tokens, s] of rows) {
    console.log(`${name.padEnd(36)} ${(bytes / 1e6 / s).toFixed(2).padStart(7)}  ${(tokens / 1e6 / s).toFixed(3).padStart(9)}  ${String(tokens).padStart(10)}  ${s.toFixed(3).padStart(8)}`);
  }
  console.log(`speed-up over js-tiktoken: ${(tk.median_s / ours.median_s).toFixed(1)}x`);
  if (ours.tokens !== tk.tokens) {
    console.log(`token counts differ: ours ${ours.tokens}, js-tiktoken ${tk.tokens}`);
    return 1;
  }
  return 0;
}

try {
  const args = parseArgs(process.argv);
  const files = ["encoder.json", "vocab.json"].map((f) => path.join(args.dir, f));
  if (!files.some((f) => fs.existsSync(f))) {
    console.log(`SKIP: no GPT-2 tokenizer files in ${args.dir} (set HELPLINE_SHARED_DIR)`);
    process.exit(77);
  }
  process.exitCode = args.bench ? bench(args) : compare(args);
} catch (e) {
  console.error(`tokenizer_compare: ${e.stack ?? e}`);
  process.exitCode = 2;
}
