// The npm package as a user receives it (`npm run test:pack`, `make test-npm-pack`).
//
// `npm pack` (which runs `prepack`, so this is what a fresh clone publishes), then checks:
//   1. the tarball holds exactly the package files: ESM + map, browser bundle, one .d.ts per
//      module, README, LICENSE; nothing else (no src/, test/, scripts/, node_modules);
//   2. every path in main/module/types/unpkg/jsdelivr/exports is in the tarball, `types`
//      conditions come first, and the copies (LICENSE, README, the browser bundle, which is
//      the Django static file) are byte-identical to the repository's;
//   3. installed with npm into a scratch project (offline: the package has no dependencies),
//      a TypeScript consumer importing from "floorchannels" type-checks with tsc under
//      moduleResolution Bundler and NodeNext (with skipLibCheck off, so the shipped .d.ts are
//      checked too), bundles with esbuild, and the bundle runs: a call is answered, a signal
//      reaches its handler, a live list applies an event;
//   4. node imports the package, and the browser bundle, run by jsdom as a classic script,
//      defines the global `floorchannels` with the same exports and connects on its own;
//   5. the `ts` examples of README's "TypeScript" section type-check as written (in step 3),
//      and the package's version is the Python package's.
//
// A plain node script rather than a vitest file, so `npm test` never runs it. Exits non-zero
// on the first failure. `--keep` leaves the scratch directory for a look.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { JSDOM } from "jsdom";
import { BUNDLE_PATH } from "./build.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const tsc = join(root, "node_modules/typescript/bin/tsc");
const keep = process.argv.includes("--keep");
const scratch = mkdtempSync(join(tmpdir(), "floorchannels-pack-"));
const started = Date.now();

function run(command, args, cwd) {
  try {
    return execFileSync(command, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    throw new Error(`\`${command} ${args.join(" ")}\` failed in ${cwd}:\n${error.stdout ?? ""}${error.stderr ?? ""}`);
  }
}

function step(title) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${title}`);
}

/** Every string leaf of an `exports` map, with the condition path that leads to it. */
function exportTargets(value, path = "exports") {
  if (typeof value === "string") return [[path, value]];
  return Object.entries(value).flatMap(([key, inner]) => exportTargets(inner, `${path}[${JSON.stringify(key)}]`));
}

async function main() {
  step(`npm pack into ${scratch}`);
  run("npm", ["pack", "--pack-destination", scratch], root);
  const tarball = join(scratch, `${pkg.name}-${pkg.version}.tgz`);

  step("the tarball's file list");
  const listed = run("tar", ["-tzf", tarball], scratch)
    .split("\n")
    .filter(Boolean)
    .map((entry) => entry.replace(/^package\//, ""));
  const declarations = readdirSync(join(root, "src"))
    .filter((name) => name.endsWith(".ts") && !name.endsWith(".d.ts"))
    .map((name) => `dist/types/${name.replace(/\.ts$/, ".d.ts")}`);
  const expected = [
    "package.json",
    "README.md",
    "LICENSE",
    "dist/floorchannels.mjs",
    "dist/floorchannels.mjs.map",
    "dist/floorchannels.js",
    ...declarations,
  ];
  assert.ok(declarations.includes("dist/types/index.d.ts") && declarations.includes("dist/types/global.d.ts"));
  assert.deepEqual(
    listed.filter((f) => !expected.includes(f)).sort(),
    [],
    "files in the tarball that should not ship",
  );
  assert.deepEqual(
    expected.filter((f) => !listed.includes(f)).sort(),
    [],
    "files missing from the tarball",
  );

  step("install the tarball into a scratch project (offline)");
  const consumer = join(scratch, "consumer");
  mkdirSync(join(consumer, "src"), { recursive: true });
  writeFileSync(
    join(consumer, "package.json"),
    JSON.stringify({ name: "floorchannels-consumer", private: true, type: "module" }, null, 2),
  );
  run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball], consumer);
  const installed = join(consumer, "node_modules/floorchannels");

  step("entry points resolve to files in the tarball; copies match the repository");
  const shipped = JSON.parse(readFileSync(join(installed, "package.json"), "utf8"));
  const entryPoints = [
    ...["main", "module", "types", "unpkg", "jsdelivr"].map((field) => [field, shipped[field]]),
    ...exportTargets(shipped.exports),
  ];
  for (const [field, target] of entryPoints) {
    assert.equal(typeof target, "string", `${field} is not set`);
    assert.ok(listed.includes(target.replace(/^\.\//, "")), `${field} = ${target} is not in the tarball`);
  }
  for (const [key, conditions] of Object.entries(shipped.exports)) {
    if (typeof conditions === "object" && "types" in conditions) {
      assert.equal(Object.keys(conditions)[0], "types", `exports["${key}"]: the types condition must come first`);
    }
  }
  assert.ok(shipped.repository?.directory === "frontend" && shipped.homepage && shipped.bugs?.url);
  const same = (packed, original) =>
    assert.ok(
      readFileSync(join(installed, packed)).equals(readFileSync(original)),
      `${packed} in the package differs from ${original}`,
    );
  same("LICENSE", resolve(root, "../LICENSE"));
  same("README.md", join(root, "README.md"));
  same("dist/floorchannels.js", BUNDLE_PATH);

  const pythonVersion = readFileSync(resolve(root, "../floorchannels/__init__.py"), "utf8").match(
    /^__version__ = "([^"]+)"/m,
  )?.[1];
  assert.equal(shipped.version, pythonVersion, "package.json's version differs from floorchannels.__version__");

  step("a TypeScript consumer and README's examples: tsc under Bundler and NodeNext");
  writeFileSync(join(consumer, "src/app.ts"), CONSUMER_APP);
  writeFileSync(join(consumer, "src/page.ts"), CONSUMER_PAGE);
  const examples = readmeTypeScript();
  assert.ok(examples.length >= 2, `README's TypeScript section has ${examples.length} ts examples`);
  examples.forEach((code, i) => writeFileSync(join(consumer, `src/readme-${i + 1}.ts`), code + README_STUBS));
  const common = {
    target: "ES2020",
    lib: ["ES2020", "DOM"],
    strict: true,
    moduleDetection: "force",
    noEmit: true,
    skipLibCheck: false,
    types: [],
  };
  for (const [name, options] of [
    ["bundler", { module: "ESNext", moduleResolution: "Bundler" }],
    ["nodenext", { module: "NodeNext", moduleResolution: "NodeNext" }],
  ]) {
    const config = `tsconfig.${name}.json`;
    writeFileSync(
      join(consumer, config),
      JSON.stringify({ compilerOptions: { ...common, ...options }, include: ["src"] }, null, 2),
    );
    // Type errors make tsc exit non-zero; the listing shows the package's own declarations were read.
    const files = run(process.execPath, [tsc, "-p", config, "--listFiles"], consumer);
    assert.match(files, /node_modules\/floorchannels\/dist\/types\/index\.d\.ts/, `${name}: index.d.ts not used`);
    assert.match(files, /node_modules\/floorchannels\/dist\/types\/global\.d\.ts/, `${name}: global.d.ts not used`);
  }

  step("the consumer bundled with esbuild, then run");
  const appBundle = join(consumer, "out/app.mjs");
  await esbuild.build({
    absWorkingDir: consumer,
    entryPoints: ["src/app.ts"],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022"],
    outfile: appBundle,
    logLevel: "silent",
  });
  const outcome = JSON.parse(run(process.execPath, [appBundle], consumer));
  assert.deepEqual(outcome, {
    stateBefore: "connecting",
    stateAfterWelcome: "open",
    sum: 3,
    signal: { kwargs: { text: "hi" }, type: "signal" },
    items: [
      { id: 1, title: "first" },
      { id: 2, title: "second" },
    ],
    error: "FloorchannelsError:forbidden",
    stateAfterClose: "closed",
  });

  step("tree shaking: importing one helper does not pull in the client");
  const small = await esbuild.build({
    absWorkingDir: consumer,
    stdin: { contents: `import { compareSeq } from "floorchannels"; console.log(compareSeq("10-0", "9-5"));`, resolveDir: consumer },
    bundle: true,
    format: "esm",
    platform: "browser",
    minify: true,
    write: false,
    logLevel: "silent",
  });
  const smallCode = small.outputFiles[0].text;
  assert.ok(!smallCode.includes("WebSocket"), "compareSeq alone bundled the websocket client");

  step("node imports the package; the browser bundle defines the global floorchannels");
  const esmKeys = JSON.parse(
    run(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const m = await import("floorchannels");
         const bundle = import.meta.resolve("floorchannels/floorchannels.js");
         console.log(JSON.stringify({ keys: Object.keys(m).sort(), bundle }));`,
      ],
      consumer,
    ),
  );
  assert.ok(esmKeys.keys.includes("connect") && esmKeys.keys.includes("liveList"), esmKeys.keys.join(", "));
  assert.ok(fileURLToPath(esmKeys.bundle).endsWith("node_modules/floorchannels/dist/floorchannels.js"));
  await checkBrowserBundle(readFileSync(join(installed, "dist/floorchannels.js"), "utf8"), esmKeys.keys);

  step(`ok: ${listed.length} files, tarball ${statSync(tarball).size} bytes`);
}

/** The ```ts blocks of README's "TypeScript" section, as written. */
function readmeTypeScript() {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const section = readme.split(/^## /m).find((part) => part.startsWith("TypeScript\n"));
  assert.ok(section, "README has no \"## TypeScript\" section");
  return [...section.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((match) => match[1]);
}

// What README's examples leave to the reader's page (appended: a `/// <reference>` must come first).
const README_STUBS = `
declare function render(items: readonly unknown[]): void;
declare function showLogin(): void;
`;

/** The bundle as a page's `<script>`: window.floorchannels with the ESM's exports, and autostart connects. */
async function checkBrowserBundle(code, esmKeys) {
  const dom = new JSDOM(
    `<!doctype html><html><head>
      <script id="floorchannels-config" type="application/json">{"url": "/ws/floorchannels/", "window_key": "k1"}</script>
    </head><body></body></html>`,
    { url: "https://site.test/page/", runScripts: "dangerously" },
  );
  const win = dom.window;
  try {
    win.eval(`
      window.sockets = [];
      window.WebSocket = class {
        constructor(url) { this.url = url; this.readyState = 0; window.sockets.push(this); }
        send() {}
        close() { this.readyState = 3; }
      };
    `);
    const script = win.document.createElement("script");
    script.textContent = code;
    win.document.body.appendChild(script);
    assert.equal(typeof win.floorchannels, "object", "the bundle did not define window.floorchannels");
    assert.deepEqual(Object.keys(win.floorchannels).sort(), esmKeys, "the global and the module export different names");
    const deadline = Date.now() + 10_000;
    while (win.sockets.length === 0) {
      assert.ok(Date.now() < deadline, "the bundle did not connect on its own within 10 s");
      await new Promise((done) => setImmediate(done));
    }
    assert.equal(win.sockets[0].url, "wss://site.test/ws/floorchannels/");
    win.floorchannels.connect().close();
  } finally {
    win.close();
  }
}

// A user's module: drives a Client with a scripted socket and prints what it observed.
// The @ts-expect-error lines fail the type check if the package's types degrade to `any`.
const CONSUMER_APP = `import { Client, FloorchannelsError, connect, liveList } from "floorchannels";
import type { ClientOptions, LiveList, SignalFrame, State, WebSocketLike } from "floorchannels";

class ScriptedSocket implements WebSocketLike {
  static last: ScriptedSocket;
  readyState = 0;
  sent: any[] = [];
  onopen: ((ev: any) => any) | null = null;
  onmessage: ((ev: { data: unknown }) => any) | null = null;
  onclose: ((ev: { code: number; reason: string }) => any) | null = null;
  onerror: ((ev: any) => any) | null = null;
  constructor(readonly url: string) {
    ScriptedSocket.last = this;
  }
  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }
  close(): void {
    this.readyState = 3;
  }
  receive(frame: object): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  lastSent(type: string): any {
    return this.sent.filter((f) => f.type === type).pop();
  }
}

// @ts-expect-error: getWindowKey answers a key (or {windowKey, expires?, url?}), not a number
const wrongHook: ClientOptions = { url: "ws://127.0.0.1/ws/", getWindowKey: async () => 42 };
void wrongHook;
// connect() is typed too (not called: it reads a page config this script has no page for).
const connectType: (options?: { shared?: boolean }) => Client = connect;
void connectType;

const options: ClientOptions = { url: "ws://127.0.0.1/ws/", windowKey: "k", WebSocket: ScriptedSocket };
const client = new Client(options);
const stateBefore: State = client.state;
// @ts-expect-error: a state is "connecting", "open" or "closed"
const impossible: "bogus" = client.state;
void impossible;

const socket = ScriptedSocket.last;
socket.readyState = 1;
socket.onopen?.({});
socket.receive({ type: "welcome", window_id: "w1", protocol: 1, heartbeat: 25 });
const stateAfterWelcome = client.state;

let signal: Pick<SignalFrame, "type" | "kwargs"> | null = null;
client.on("chat.message", (_kwargs, frame: SignalFrame) => {
  signal = { type: frame.type, kwargs: frame.kwargs };
});
socket.receive({ type: "signal", signal: "chat.message", kwargs: { text: "hi" }, id: "m1" });

const pending = client.call("demo.add", { a: 1, b: 2 });
socket.receive({ type: "reply", id: socket.lastSent("call").id, ok: true, result: 3 });
const sum = await pending;

interface Note {
  id: number;
  title: string;
}
const notes: LiveList<Note> = liveList<Note>(client, "notes", { items: [{ id: 1, title: "first" }] });
const subscribe = socket.lastSent("subscribe");
socket.receive({ type: "reply", id: subscribe.id, ok: true });
await notes.ready;
socket.receive({
  type: "event", subscription: subscribe.id, resource: "notes", action: "created", pk: "2",
  data: { id: 2, title: "second" }, id: "e1",
});

const refused = client.call("demo.secret");
socket.receive({
  type: "reply", id: socket.lastSent("call").id, ok: false,
  error: { code: "forbidden", message: "no" },
});
let error = "";
try {
  await refused;
} catch (caught) {
  if (caught instanceof FloorchannelsError) error = caught.name + ":" + caught.code;
}

notes.close();
client.close();
console.log(JSON.stringify({
  stateBefore, stateAfterWelcome, sum, signal, items: notes.items, error, stateAfterClose: client.state,
}));
`;

// A page that loads the bundle with a script tag and types the global.
const CONSUMER_PAGE = `/// <reference types="floorchannels/global" />
export function start(): void {
  const client = floorchannels.connect();
  client.on("chat.message", ({ text }) => console.log(text));
  // @ts-expect-error: the global has the module's exports, not arbitrary names
  floorchannels.noSuchExport();
}
`;

try {
  await main();
} catch (error) {
  console.error(`\nFAILED: ${error.message}`);
  process.exitCode = 1;
} finally {
  if (keep) console.log(`kept ${scratch}`);
  else rmSync(scratch, { recursive: true, force: true });
}
