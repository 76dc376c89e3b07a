#!/usr/bin/env node
// Builds a fieldhook plugin written in JavaScript into a WebAssembly
// component for the `fieldhook:plugin/plugin` world, with componentize-js.
//
//   node guest-sdk-js/build.mjs plugins/my-plugin/plugin.js -o plugins/my-plugin/plugin.wasm
//
// componentize-js only reads files under the entry's directory, so the
// entry's directory is staged in a temp dir with this SDK beside it, and
// imports of "@fieldhook/guest-sdk" are pointed at that copy.
import { componentize } from "@bytecodealliance/componentize-js";
import { cp, mkdtemp, readdir, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const SDK_DIR = dirname(fileURLToPath(import.meta.url));
const SPECIFIER = "@fieldhook/guest-sdk";
const WORLD = "fieldhook:plugin/plugin@0.1.0";

function usage(message) {
  if (message) console.error(`error: ${message}`);
  console.error("usage: node build.mjs <entry.js> -o <out.wasm> [--wit <dir>]");
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { wit: resolve(SDK_DIR, "..", "wit", "0.1") };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-o" || a === "--out") opts.out = argv[++i];
    else if (a === "--wit") opts.wit = argv[++i];
    else if (a === "-h" || a === "--help") usage();
    else if (!opts.entry) opts.entry = a;
    else usage(`unexpected argument \`${a}\``);
  }
  if (!opts.entry) usage("no entry file");
  if (!opts.out) usage("no output file (-o)");
  return opts;
}

async function jsFiles(dir) {
  const out = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory() && e.name !== "node_modules") out.push(...(await jsFiles(p)));
    else if (e.isFile() && /\.(m?js)$/.test(e.name)) out.push(p);
  }
  return out;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const entry = resolve(opts.entry);
  const stage = await mkdtemp(join(tmpdir(), "fieldhook-js-"));
  try {
    const src = join(stage, "src");
    await cp(dirname(entry), src, {
      recursive: true,
      filter: (p) => !/(^|\/)(node_modules|\.git)(\/|$)/.test(p) && !p.endsWith(".wasm"),
    });
    await mkdir(join(src, ".fieldhook"), { recursive: true });
    const sdkCopy = join(src, ".fieldhook", "fieldhook.js");
    await cp(join(SDK_DIR, "fieldhook.js"), sdkCopy);
    for (const file of await jsFiles(src)) {
      if (file === sdkCopy) continue;
      const code = await readFile(file, "utf8");
      if (!code.includes(SPECIFIER)) continue;
      let rel = relative(dirname(file), sdkCopy);
      if (!rel.startsWith(".")) rel = `./${rel}`;
      await writeFile(file, code.replaceAll(`"${SPECIFIER}"`, `"${rel}"`).replaceAll(`'${SPECIFIER}'`, `'${rel}'`));
    }
    const started = Date.now();
    const { component } = await componentize({
      sourcePath: join(src, basename(entry)),
      witPath: resolve(opts.wit),
      worldName: WORLD,
    });
    await mkdir(dirname(resolve(opts.out)), { recursive: true });
    await writeFile(opts.out, component);
    console.error(
      `built ${opts.out} (${(component.length / 1e6).toFixed(1)} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`error: building ${process.argv[2] ?? "the plugin"} failed: ${e?.stack ?? e}`);
  process.exit(1);
});
