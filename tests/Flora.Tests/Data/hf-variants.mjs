// Writes hf-variants.json.gz beside this file: variants of the Hugging Face tokenizer fixtures
// (tests/fixtures/hf/tokenizers) that use options those files do not (added tokens with lstrip, rstrip and
// single_word, the other split behaviours and invert, NFKC and NFD, Metaspace "always" with split and the
// Metaspace decoder, unknown tokens without byte fallback, ignore_merges, a prefix space, a template that
// appends EOS, no decoder), each as edits of a fixture's tokenizer.json, with the ids and texts that
// Hugging Face tokenizers (the Node binding, npm package tokenizers 0.23.2) gives for 120 strings.
// Read by HuggingFaceTokenizerTests. Run from the repository root:
//   mkdir -p ~/tk && (cd ~/tk && npm init -y && npm install tokenizers@0.23.2)
//   NODE_PATH=~/tk/node_modules node tests/Flora.Tests/Data/hf-variants.mjs
import { createRequire } from "module";
import fs from "fs";
import path from "path";
import zlib from "zlib";

const require = createRequire(import.meta.url);
const tk = require("tokenizers");
const here = path.dirname(new URL(import.meta.url).pathname);
const fixtures = path.join(here, "..", "..", "fixtures", "hf", "tokenizers");

function load(name) {
  const dir = path.join(fixtures, name);
  const plain = path.join(dir, "tokenizer.json");
  return JSON.parse(fs.existsSync(plain) ? fs.readFileSync(plain, "utf8")
    : zlib.gunzipSync(fs.readFileSync(plain + ".gz")).toString("utf8"));
}

// Edits: [JSON pointer, value]; a pointer ending in "/-" appends to an array.
function apply(json, edits) {
  for (const [pointer, value] of edits) {
    const parts = pointer.split("/").slice(1);
    let node = json;
    for (const p of parts.slice(0, -1)) node = node[p];
    const last = parts[parts.length - 1];
    if (last === "-") node.push(value); else node[last] = value;
  }
  return json;
}

const SP = "\u2581";
const pieces = ["a", "e", "s", "the", "The", "hello", "Hello", "world", "HELLO", "don", "DON", "I", "x", "sing", "ing", "pony", "ony",
  " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", "\u00a0", "\u3000", "\u2028", "\u0085", "\u000b",
  "'s", "'S", "'t", "'ll", "\u2019", "0", "1", "12", "123", "1234", "\u00bd", "\u2167", "\u0663",
  ".", ",", "!", "-", "--", "...", "(", "\"", "#", "$", "_", "<", ">", "|",
  "\u0301", "\u0323", "e\u0301", "\u00e9", "A\u030a", "\u212b", "\ufb01", "\u1e9b\u0323",
  "\u0393\u03b5\u03b9\u03ac", "\u041f\u0440\u0438", "\u4f60\u597d", "\ud55c\uad6d", "\u1100\u1161\u11a8",
  "\u{20000}", "\u{1d400}\u{1d401}", "\u{1d7d9}", "\u{1f600}", "\u{1f44d}\u{1f3fd}", "\u{1f468}\u200d\u{1f469}",
  SP, SP + SP, "\u0120", "<s>", "</s>", "<unk>", "<0x41>", "<|endoftext|>", "<|begin_of_text|>", "<|eot_id|>", "<|im_start|>"];
let seed = 20240607;
const next = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
const strings = ["", " ", "pony ony", "ony", "a <|eot_id|> b", "x<|eot_id|>y", "  <|eot_id|>  ", "sing ing ing.", "a-b--c",
  "hello  world\n\n x", " leading", "trailing ", "<s>hello</s>", "Hello <s>."];
while (strings.length < 120) {
  let s = "";
  for (let k = 1 + next(10); k > 0; k--) s += pieces[next(pieces.length)];
  strings.push(s);
}

const variants = [];
const eot = (json) => json.added_tokens.findIndex((a) => a.content === "<|eot_id|>");
const llama3 = load("llama3-style");
const idOf = (json, content, fallback) => json.model.vocab[content] ?? fallback;
variants.push(["added-token-options", "llama3-style", [
  [`/added_tokens/${eot(llama3)}/lstrip`, true], [`/added_tokens/${eot(llama3)}/rstrip`, true],
  ["/added_tokens/-", { id: idOf(llama3, "ing", 2003), content: "ing", single_word: true, lstrip: false, rstrip: false, normalized: true, special: false }],
  ["/added_tokens/-", { id: idOf(llama3, "ony", idOf(llama3, "ing", null) === null ? 2004 : 2003), content: "ony", single_word: true, lstrip: true, rstrip: false, normalized: false, special: false }]]]);
for (const behavior of ["MergedWithPrevious", "MergedWithNext", "Contiguous", "Removed"]) {
  variants.push([`split-${behavior}-nfkc`, "qwen2-style", [["/normalizer", { type: "NFKC" }], ["/pre_tokenizer/pretokenizers/0/behavior", behavior]]]);
  variants.push([`split-${behavior}-invert`, "qwen2-style", [["/pre_tokenizer/pretokenizers/0/behavior", behavior], ["/pre_tokenizer/pretokenizers/0/invert", true]]]);
}
variants.push(["metaspace-always-split", "llama2-style", [["/pre_tokenizer/prepend_scheme", "always"], ["/pre_tokenizer/split", true],
  ["/decoder", { type: "Metaspace", replacement: SP, prepend_scheme: "always", split: true }]]]);
variants.push(["metaspace-decoder-first", "llama2-style", [["/decoder", { type: "Metaspace", replacement: SP, prepend_scheme: "first", split: false }]]]);
variants.push(["unk-without-fuse", "llama2-hub-style", [["/model/byte_fallback", false], ["/model/fuse_unk", false]]]);
variants.push(["unk-fused-ignore-merges", "llama2-hub-style", [["/model/byte_fallback", false], ["/model/ignore_merges", true]]]);
variants.push(["nfd-no-decoder", "llama2-hub-style", [["/normalizer/normalizers/0", { type: "NFD" }], ["/normalizer/normalizers/-", { type: "Prepend", prepend: SP }], ["/decoder", null]]]);
variants.push(["prefix-space-eos-template", "gpt2", [["/pre_tokenizer/add_prefix_space", true], ["/post_processor", {
  type: "TemplateProcessing", single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "<|endoftext|>", type_id: 0 } }],
  pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
  special_tokens: { "<|endoftext|>": { id: "<|endoftext|>", ids: [50256], tokens: ["<|endoftext|>"] } } }]]]);

const out = { made_by: "tests/Flora.Tests/Data/hf-variants.mjs with the npm package tokenizers " + require("tokenizers/package.json").version, variants: [] };
for (const [name, base, edits] of variants) {
  const tok = tk.Tokenizer.fromString(JSON.stringify(apply(load(base), edits)));
  const cases = [];
  for (const text of strings) {
    const ids = Array.from((await tok.encode(text, null, { addSpecialTokens: true })).getIds());
    const plain = Array.from((await tok.encode(text, null, { addSpecialTokens: false })).getIds());
    cases.push({ text, ids, ids_no_special: plain, decoded: await tok.decode(plain, false), decoded_skip_special: await tok.decode(ids, true) });
  }
  out.variants.push({ name, base, edits, cases });
  console.log(name, cases.length);
}
fs.writeFileSync(path.join(here, "hf-variants.json.gz"), zlib.gzipSync(Buffer.from(JSON.stringify(out)), { level: 9 }));
