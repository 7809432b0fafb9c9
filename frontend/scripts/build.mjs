// Build the browser bundle (committed, served by Django) and the npm package's files (not committed).
//
//   node scripts/build.mjs            write ../floorchannels/static/floorchannels/floorchannels.js and the package files
//   node scripts/build.mjs --package  write the package files only (`prepack`: never touches the Django static file)
//   node scripts/build.mjs --check    rebuild the bundle in memory and fail if the committed one differs
//
// The package files: dist/floorchannels.mjs (+ .map) the ES module, dist/floorchannels.js the
// browser bundle (the same bytes as the Django static file), dist/types/*.d.ts, and LICENSE
// copied from the repository root (npm ships only what is inside frontend/).
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const BUNDLE_PATH = resolve(root, "../floorchannels/static/floorchannels/floorchannels.js");

const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const banner = `/*! floorchannels ${pkg.version} | browser client | built from frontend/ by \`npm run build\`: do not edit */`;

/** The IIFE bundle's bytes, built in memory. Deterministic: same sources and esbuild version, same bytes. */
export async function buildBundle() {
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: ["src/browser.ts"],
    bundle: true,
    format: "iife",
    globalName: "floorchannels",
    platform: "browser",
    target: ["es2020"],
    minify: true,
    legalComments: "none",
    charset: "utf8",
    banner: { js: banner },
    write: false,
    logLevel: "silent",
  });
  return result.outputFiles[0].contents;
}

/** The npm package's built files, from a clean dist/ so nothing stale ships. */
export async function buildPackage() {
  rmSync(join(root, "dist"), { recursive: true, force: true });
  mkdirSync(join(root, "dist"), { recursive: true });
  writeFileSync(join(root, "dist/floorchannels.js"), await buildBundle());
  // The maps embed the sources (esbuild's default), so they work without src/ in the package.
  await esbuild.build({
    absWorkingDir: root,
    entryPoints: ["src/index.ts"],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2020"],
    outfile: "dist/floorchannels.mjs",
    sourcemap: true,
    logLevel: "warning",
  });
  execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], {
    cwd: root,
    stdio: "inherit",
  });
  copyFileSync(resolve(root, "../LICENSE"), join(root, "LICENSE"));
}

/** True when the committed bundle has the bytes a fresh build gives. */
export async function bundleIsFresh() {
  const built = await buildBundle();
  let committed;
  try {
    committed = readFileSync(BUNDLE_PATH);
  } catch {
    return false;
  }
  return Buffer.compare(Buffer.from(built), committed) === 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes("--check")) {
    if (await bundleIsFresh()) {
      console.log(`bundle is up to date: ${BUNDLE_PATH}`);
    } else {
      console.error(`STALE: ${BUNDLE_PATH} does not match frontend/src; run \`npm run build\` and commit it`);
      process.exit(1);
    }
  } else {
    if (!process.argv.includes("--package")) {
      mkdirSync(dirname(BUNDLE_PATH), { recursive: true });
      writeFileSync(BUNDLE_PATH, await buildBundle());
      console.log(`wrote ${BUNDLE_PATH}`);
    }
    await buildPackage();
    console.log("wrote dist/ and LICENSE");
  }
}
