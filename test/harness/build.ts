// The production artifact under test: dist/signet.mjs, as `npm run build` makes it and the image ships it. Tests that
// start Signet as a process start this file. `npm test` builds first; a test file run on its own builds here when
// dist/ is missing or older than anything it is built from (so it never tests stale code), once per process.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { buildDist, DIST, ROOT } from '../../scripts/build.ts';

export const SIGNET_JS = join(DIST, 'signet.mjs');

function newestInput(): number {
  const files = [join(ROOT, 'package-lock.json'), join(ROOT, 'scripts', 'build.ts'), join(ROOT, 'bin', 'healthcheck.js')];
  for (const entry of readdirSync(join(ROOT, 'src'), { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) files.push(join(entry.parentPath, entry.name));
  }
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}

let built: Promise<string> | undefined;

/** The path of dist/signet.mjs, built first if it is missing or stale. */
export function builtSignet(): Promise<string> {
  built ??= (async () => {
    if (!existsSync(SIGNET_JS) || statSync(SIGNET_JS).mtimeMs < newestInput()) await buildDist();
    return SIGNET_JS;
  })();
  return built;
}
