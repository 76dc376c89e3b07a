#!/usr/bin/env node
// Builds a fieldhook plugin written in JavaScript into a WebAssembly
// component for the `fieldhook:plugin/plugin@0.2.0` world, with
// componentize-js.
//
//   node guest-sdk-js/build.mjs plugins/my-plugin/plugin.js -o plugins/my-plugin/plugin.wasm
//
// componentize-js only reads files under the entry's directory, so the
// entry's directory is staged in a temp dir with this SDK beside it, and
// imports of "@fieldhook/guest-sdk" (and ".../vendors") are pointed at that
// copy. Test files (*.test.mjs, *.test.js) are left out.
import { componentize } from "@bytecodealliance/componentize-js";
import { cp, mkdtemp, readdir, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const SDK_DIR = dirname(fileURLToPath(import.meta.url));
const SPECIFIER = "@fieldhook/guest-sdk";
// What a plugin may import, and the staged file each one is.
const ENTRIES = { [SPECIFIER]: "fieldhook.js", [`${SPECIFIER}/vendors`]: "vendors.js" };
// The SDK files a component needs.
const RUNTIME = ["fieldhook.js", "core.js", "errors.js", "vendors.js"];
// The contract this SDK speaks.
const CONTRACT = "0.2.0";
// StarlingMonkey features to leave out (`--disable stdio,random,...`). None
// by default: leaving out all but `http` saves 0.2 % of the component and
// loses error output (stdio), real randomness (random) and Date.now (clocks).
const DISABLED = [];

function usage(message) {
  if (message) console.error(`error: ${message}`);
  console.error("usage: node build.mjs <entry.js> -o <out.wasm> [--wit <dir>] [--disable <feature,...>]");
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { wit: resolve(SDK_DIR, "..", "wit", "0.2"), disable: DISABLED };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-o" || a === "--out") opts.out = argv[++i];
    else if (a === "--wit") opts.wit = argv[++i];
    else if (a === "--disable") opts.disable = argv[++i].split(",").filter(Boolean);
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
    else if (e.isFile() && /\.(m?js)$/.test(e.name) && !isTest(p)) out.push(p);
  }
  return out;
}

const isTest = (p) => /\.test\.m?js$/.test(p);

/** The world of the contract in `dir`, which must be the one this SDK speaks. */
async function world(dir) {
  let wit;
  try {
    wit = await readFile(join(dir, "plugin.wit"), "utf8");
  } catch {
    usage(`${dir} has no plugin.wit`);
  }
  const version = /^package\s+fieldhook:plugin@([0-9.]+)\s*;/m.exec(wit)?.[1];
  if (version !== CONTRACT) {
    usage(
      `${dir} is contract ${version ?? "(unknown)"}; this SDK builds ${CONTRACT} only ` +
        "(components already built for 0.1 keep working in the daemon)",
    );
  }
  return `fieldhook:plugin/plugin@${CONTRACT}`;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const worldName = await world(resolve(opts.wit));
  const entry = resolve(opts.entry);
  const stage = await mkdtemp(join(tmpdir(), "fieldhook-js-"));
  try {
    const src = join(stage, "src");
    await cp(dirname(entry), src, {
      recursive: true,
      filter: (p) => !/(^|\/)(node_modules|\.git)(\/|$)/.test(p) && !p.endsWith(".wasm") && !isTest(p),
    });
    const sdkDir = join(src, ".fieldhook");
    await mkdir(sdkDir, { recursive: true });
    for (const file of RUNTIME) await cp(join(SDK_DIR, file), join(sdkDir, file));
    for (const file of await jsFiles(src)) {
      if (file.startsWith(sdkDir)) continue;
      let code = await readFile(file, "utf8");
      if (!code.includes(SPECIFIER)) continue;
      for (const [specifier, target] of Object.entries(ENTRIES)) {
        let rel = relative(dirname(file), join(sdkDir, target));
        if (!rel.startsWith(".")) rel = `./${rel}`;
        code = code.replaceAll(`"${specifier}"`, `"${rel}"`).replaceAll(`'${specifier}'`, `'${rel}'`);
      }
      await writeFile(file, code);
    }
    const started = Date.now();
    const { component } = await componentize({
      sourcePath: join(src, basename(entry)),
      witPath: resolve(opts.wit),
      worldName,
      disableFeatures: opts.disable,
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
