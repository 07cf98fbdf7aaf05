// Prints the minified and minified+gzipped size of skewgate.js (the number quoted in README.md).
import { buildSync } from 'esbuild';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('../skewgate.js', import.meta.url));
const out = buildSync({
  entryPoints: [entry],
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2020',
  write: false,
});
const code = out.outputFiles[0].contents;
const gz = gzipSync(code, { level: 9 }).length;
console.log(`skewgate.js: ${code.length} bytes minified, ${gz} bytes minified+gzipped`);
if (gz > 2048) {
  console.error(`over the 2048-byte budget by ${gz - 2048} bytes`);
  process.exitCode = 1;
}
