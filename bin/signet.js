#!/usr/bin/env node
// Signet's command line from a checkout (npx signet …): Node 24 runs the TypeScript sources directly (type
// stripping). The image runs the production bundle instead (npm run build: dist/signet.js).
//
// The Node check comes first, before anything Node 20 cannot load (a static import of a .ts file would fail there
// before any line of this file ran); the import is dynamic for that reason.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`signet: Node.js ${process.versions.node} is too old: Signet needs Node.js 24 (run it through npx or npm scripts, which use the pinned one, after npm ci)\n`);
  process.exit(1);
}
await import('../src/cli.ts');
