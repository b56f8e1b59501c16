// npm run build: the production artifact. esbuild bundles src/cli.ts (and bin/healthcheck.js) with every
// dependency into one minified ESM file each (dist/signet.mjs,
// dist/healthcheck.mjs), with a source map, in dist/; tsc stays the type checker.
//
// What stays out of the bundle: src/dev.ts (`signet dev`: starting a Vault dev server), which src/cli.ts loads with
// a computed dynamic import from the sources, so a checkout can run it and the image does not carry it.
// dist/meta.json (esbuild's metafile, not shipped) lists every input of the bundle; the tests check it.
//
// Also used by the tests (test/harness/build.ts), which build once per run when dist/ is older than its inputs.

import { build, type Metafile } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

export const ROOT = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
export const DIST = join(ROOT, 'dist');
/** The files the image ships (Dockerfile: COPY --from=build /app/dist/…); meta.json stays behind.. */
// .mjs: the image has no package.json ("type": "module"), and Node then knows the format without guessing.
// externaljwt.proto: src/kubernetes/server.ts loads it at run time from next to its own module (the bundle's dir).
export const SHIPPED = ['signet.mjs', 'signet.mjs.map', 'healthcheck.mjs', 'THIRD-PARTY-LICENSES.txt', 'externaljwt.proto'];

/** The license texts of the npm packages the bundles contain (their notices must travel with the copies). */
function thirdPartyLicenses(meta: Metafile): string {
  const packages = new Set<string>();
  for (const input of Object.keys(meta.inputs)) {
    const match = /^node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (match) packages.add(match[1]!);
  }
  const sections: string[] = [];
  for (const name of [...packages].sort()) {
    const dir = join(ROOT, 'node_modules', name);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string; license?: string };
    const file = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
    const text = file ? readFileSync(join(dir, file), 'utf8').trim() : `(no license file; package.json says ${pkg.license ?? 'nothing'})`;
    sections.push(`${name}@${pkg.version} (${pkg.license ?? 'unknown'})\n\n${text}\n`);
  }
  return `Third-party software bundled into signet.mjs and healthcheck.mjs:\n\n${sections.join(`\n${'-'.repeat(78)}\n\n`)}`;
}

/**
 * Builds into a fresh directory and moves it into place, so that a concurrent reader (another test process) sees
 * either the old dist/ or the new one, never half a file.
 */
export async function buildDist(outdir = DIST): Promise<Metafile> {
  const staging = `${outdir}.tmp-${process.pid}-${Date.now()}`;
  try {
    const result = await build({
      absWorkingDir: ROOT,
      entryPoints: { signet: 'src/cli.ts', healthcheck: 'bin/healthcheck.js' },
      outdir: staging,
      outExtension: { '.js': '.mjs' },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node24',
      minify: true,
      // Names stay readable in stack traces and in pino's error serialisation; the map gives the source lines.
      keepNames: true,
      sourcemap: 'linked',
      sourcesContent: false,
      legalComments: 'none',
      metafile: true,
      logLevel: 'warning',
      // CommonJS dependencies (fastify, pino, node-vault) call require() for Node's built-ins: give the ESM bundle one.
      banner: { js: 'import { createRequire as __signetRequire } from "node:module"; const require = __signetRequire(import.meta.url);' },
    });
    // The healthcheck needs no source map (it is small and has its source in bin/).
    rmSync(join(staging, 'healthcheck.mjs.map'), { force: true });
    writeFileSync(join(staging, 'meta.json'), `${JSON.stringify(result.metafile)}\n`);
    writeFileSync(join(staging, 'THIRD-PARTY-LICENSES.txt'), thirdPartyLicenses(result.metafile));
    copyFileSync(join(ROOT, 'src', 'kubernetes', 'externaljwt.proto'), join(staging, 'externaljwt.proto'));
    mkdirSync(outdir, { recursive: true });
    for (const file of [...SHIPPED, 'meta.json']) renameSync(join(staging, file), join(outdir, file));
    return result.metafile;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const meta = await buildDist();
  for (const [output, { bytes }] of Object.entries(meta.outputs)) {
    if (existsSync(join(DIST, basename(output)))) process.stdout.write(`dist/${basename(output)}  ${(bytes / 1024).toFixed(0)} KiB\n`);
  }
}
