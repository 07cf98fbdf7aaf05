// Bundles the browser pages with esbuild: the real OpenTelemetry JS web SDK + OTLP/HTTP exporter
// (root package.json devDependencies) and the companion module (clients/browser/skewgate.js).
//
//   node tests/browser/build.mjs e2e  OUTFILE   the page driven by tests/test_browser_e2e.py
//   node tests/browser/build.mjs demo OUTFILE   the local runner's /demo page (make demo)
//   node tests/browser/build.mjs capture OUTFILE  the fixture capture page (make fixtures)
//
// Content-hash cache: the first line of OUTFILE records a hash of every input that can change the
// bundle (the entry's directory sources, the companion, package-lock.json, this script). When it
// matches, nothing is rebuilt (the file's mtime is refreshed so make sees it up to date). Writes
// go through a temporary file and a rename, so concurrent builds never see a half-written bundle.
// Prints the output path.

import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, readSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const ENTRIES = {
  e2e: join(here, 'e2e.mjs'),
  demo: join(here, 'demo.mjs'),
  capture: join(here, 'capture.mjs'),
};

const [target, outArg] = process.argv.slice(2);
if (!ENTRIES[target] || !outArg) {
  console.error(`usage: node tests/browser/build.mjs {${Object.keys(ENTRIES).join('|')}} OUTFILE`);
  process.exit(2);
}
const outfile = resolve(outArg);

const inputs = [
  ENTRIES[target],
  join(root, 'clients', 'browser', 'skewgate.js'),
  join(root, 'package-lock.json'),
  fileURLToPath(import.meta.url),
];
const hash = createHash('sha256');
hash.update(target);
for (const file of inputs) {
  hash.update('\0' + file.slice(root.length) + '\0');
  hash.update(readFileSync(file));
}
const digest = hash.digest('hex').slice(0, 16);
const banner = `/* skewgate ${target} bundle ${digest}: built by tests/browser/build.mjs, do not edit */`;

const firstLine = (file) => {
  try {
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(banner.length + 1);
      const n = readSync(fd, buf, 0, buf.length, 0);
      return buf.subarray(0, n).toString('utf8').split('\n')[0];
    } finally {
      closeSync(fd);
    }
  } catch {
    return null;
  }
};

if (firstLine(outfile) === banner) {
  const now = new Date();
  utimesSync(outfile, now, now);
  console.log(outfile);
  process.exit(0);
}

const { build } = await import('esbuild');
const result = await build({
  entryPoints: [ENTRIES[target]],
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: 'es2020',
  minify: target === 'demo',
  sourcemap: false,
  legalComments: 'none',
  write: false,
  logLevel: 'warning',
  absWorkingDir: root,
});
mkdirSync(dirname(outfile), { recursive: true });
const tmp = `${outfile}.${process.pid}.tmp`;
writeFileSync(tmp, banner + '\n' + result.outputFiles[0].text);
renameSync(tmp, outfile);
console.log(outfile);
