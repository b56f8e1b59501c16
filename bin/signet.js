#!/usr/bin/env node
// Signet's command line. Node 24 runs the TypeScript sources directly (type stripping). The version check comes
// before anything is imported: an older Node cannot even load a .ts module and would die with
// ERR_UNKNOWN_FILE_EXTENSION instead of saying what to do.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`signet needs Node.js 24 or newer (this is ${process.version}). From a checkout, run it as `
    + '`npx signet …` after `npm ci`: the project installs Node.js 24 itself.\n');
  process.exit(2);
}
await import('../src/cli.ts');
