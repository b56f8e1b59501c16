// The container image without a Docker engine: the Dockerfile's instructions are carried out on a temporary
// directory tree standing in for the image (WORKDIR, COPY with .dockerignore applied, COPY --from, ENV, USER), the
// build stage's `npm ci` and `node scripts/build.ts` run clean, and then the image's CMD starts the production bundle
// from the runtime tree (with the image's NODE_OPTIONS and MALLOC_ARENA_MAX), as the
// image's non-root user, with the image's default /etc/signet/signet.yaml, against a real Vault and a token that
// holds only vault-policy.hcl. /healthz, /readyz, signing and the HEALTHCHECK command must work; with
// SIGNET_PUBLIC_LISTEN set, the read-only public listener (what deploy/kubernetes/ probes, scrapes and publishes)
// must serve health, the JWKS, discovery and metrics under any Host and refuse to sign; SIGTERM must stop it
// cleanly, and nothing may be written into the tree (read-only root filesystem).
//
// Two liberties, both noted where they happen: the started process is this test's own Node 24, copied to the
// image tree's /usr/local/bin/node where the base image keeps its own (the same version: the image pins the Node
// the tests run on; and the image's user must be able to run it wherever the checkout lies),
// and `npm cache clean --force` is not run (it would wipe this machine's npm cache), while --prefer-offline is
// added to npm ci so a warm cache makes it quick.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, posix, relative } from 'node:path';
import { freePort } from '../../src/vault/dev-server.ts';
import { copyOf, dockerignored, envPairs, execForm, readDockerfile, stages, type Stage } from '../harness/dockerfile.ts';
import { rawRequest } from '../harness/http.ts';
import { ROOT, run, type RunResult } from '../harness/ops.ts';
import { startVault, type TestVault } from '../harness/vault.ts';

interface BuiltStage { name?: string; root: string; workdir: string; env: Record<string, string>; user?: string }

/** Carries out one stage's instructions on a directory tree. */
async function buildStage(stage: Stage, root: string, built: Map<string, BuiltStage>, notes: string[]): Promise<BuiltStage> {
  const state: BuiltStage = { name: stage.name, root, workdir: '/', env: {} };
  const inside = (path: string) => join(root, isAbsolute(path) ? path : posix.join(state.workdir, path));
  for (const ins of stage.instructions) {
    switch (ins.keyword) {
      case 'WORKDIR':
        state.workdir = posix.resolve(state.workdir, ins.args);
        mkdirSync(inside('.'), { recursive: true });
        break;
      case 'ENV':
        for (const [name, value] of envPairs(ins.args)) state.env[name] = value;
        break;
      case 'USER':
        state.user = ins.args;
        break;
      case 'COPY': {
        const copy = copyOf(ins);
        const from = copy.from ? built.get(copy.from) : undefined;
        if (copy.from && !from) throw new Error(`COPY --from=${copy.from}: no such stage`);
        const toDir = copy.dest.endsWith('/') || copy.sources.length > 1;
        for (const source of copy.sources) {
          const src = from ? join(from.root, posix.resolve(from.workdir, source)) : join(ROOT, source);
          if (!existsSync(src)) throw new Error(`COPY line ${copy.line}: ${source} does not exist`);
          const dest = toDir ? join(inside(copy.dest), basename(source)) : inside(copy.dest);
          mkdirSync(dirname(dest), { recursive: true });
          cpSync(src, dest, {
            recursive: true,
            // The build context is what .dockerignore leaves; COPY --from copies from the other stage as is.
            filter: (path) => from !== undefined || path === src || !dockerignored(relative(ROOT, path)),
          });
        }
        break;
      }
      case 'RUN': {
        const build = /^node (scripts\/build\.ts)$/.exec(ins.args);
        if (build) {
          // The build stage's `node` is the image's Node 24; this test runs on the same version (dockerfile.test.ts).
          notes.push(`ran: node ${build[1]} (in ${state.workdir})`);
          const result = await run(process.execPath, [build[1]!], { cwd: inside('.'), timeoutMs: 300_000 });
          if (result.code !== 0) throw new Error(`node ${build[1]} failed (${result.code}):\n${result.stdout}\n${result.stderr}`);
          break;
        }
        const npm = /\bnpm ci\b[^&;|]*/.exec(ins.args);
        if (!npm) throw new Error(`RUN line ${ins.line}: this test only knows how to run npm ci and node scripts/build.ts (${ins.args})`);
        const args = npm[0].trim().split(/\s+/).slice(1);
        notes.push(`ran: npm ${args.join(' ')} --prefer-offline (in ${state.workdir}); skipped the rest of "RUN ${ins.args}"`);
        const result = await run('npm', [...args, '--prefer-offline'], { cwd: inside('.'), timeoutMs: 300_000, env: { ...process.env, npm_config_update_notifier: 'false' } });
        if (result.code !== 0) throw new Error(`npm ${args.join(' ')} failed (${result.code}):\n${result.stdout}\n${result.stderr}`);
        break;
      }
      default:
        break; // ARG, LABEL, EXPOSE, STOPSIGNAL, HEALTHCHECK, CMD: metadata
    }
  }
  return state;
}

/** Every path under a tree with its size and mtime, to show that running wrote nothing into it. */
function snapshot(root: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const stat = statSync(path, { throwIfNoEntry: false });
    out.set(relative(root, path), stat ? `${stat.size}:${stat.mtimeMs}` : 'gone');
  }
  return out;
}

describe('the Docker image\'s file tree and command, without Docker', () => {
  const instructions = readDockerfile();
  const all = stages(instructions);
  const final = all.at(-1)!;
  const cmd = execForm(final.instructions.find((i) => i.keyword === 'CMD')!.args)!;
  const healthcheck = execForm(final.instructions.find((i) => i.keyword === 'HEALTHCHECK')!.args.replace(/^.*?CMD\s+/, ''))!;

  let work: string;
  let image: BuiltStage;
  const built = new Map<string, BuiltStage>();
  let vault: TestVault;
  let child: ChildProcess | undefined;
  let output = '';
  let url: string;
  let listen: string;
  let publicPort: number;
  let env: NodeJS.ProcessEnv;
  let before_: Map<string, string>;
  const notes: string[] = [];
  const timings: Record<string, number> = {};
  let uid: number | undefined;
  /** The image's node: this test's Node 24, copied to /usr/local/bin/node inside the image tree. */
  let node: string;
  let gid: number | undefined;

  /** A path inside the image, on this machine. */
  const inImage = (path: string) => join(image.root, posix.resolve(image.workdir, path));
  const mapArg = (arg: string) => (arg.startsWith('/') && existsSync(join(image.root, arg)) ? join(image.root, arg) : arg);

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'signet-image-'));
    chmodSync(work, 0o755);
    let started = performance.now();
    for (const [i, stage] of all.entries()) {
      const root = join(work, `stage-${i}`);
      mkdirSync(root, { recursive: true });
      const state = await buildStage(stage, root, built, notes);
      if (stage.name) built.set(stage.name, state);
      image = state;
    }
    timings.build_ms = Math.round(performance.now() - started);

    // The image's USER (a number); this machine can switch to it only as root.
    const user = /^(\d+)(?::(\d+))?$/.exec(image.user ?? '');
    if (user && process.getuid?.() === 0) {
      uid = Number(user[1]);
      gid = Number(user[2] ?? user[1]);
    }

    vault = await startVault();
    await vault.createKey('app', 'ecdsa-p256');
    await vault.createKey('app-hmac', 'hmac');
    await vault.api('PUT', 'sys/policies/acl/signet', { policy: readFileSync(join(ROOT, 'vault-policy.hcl'), 'utf8') });
    const token = await vault.api('POST', 'auth/token/create', { policies: ['signet'], no_default_policy: true, ttl: '1h' });
    listen = `127.0.0.1:${await freePort()}`;
    url = `http://${listen}`;
    publicPort = await freePort();
    env = {
      PATH: '/usr/local/bin:/usr/bin:/bin',
      ...Object.fromEntries(Object.entries(image.env).map(([k, v]) => [k, mapArg(v)])),
      VAULT_ADDR: vault.address,
      VAULT_TOKEN: (token.auth as { client_token: string }).client_token,
      // The image listens on 127.0.0.1:8250; the test takes a free port so that runs cannot collide.
      SIGNET_LISTEN: listen,
      // The public listener, off in the image's default configuration; deploy/kubernetes/ turns it on (0.0.0.0:8251).
      SIGNET_PUBLIC_LISTEN: `127.0.0.1:${publicPort}`,
    };

    // The base image has its node at /usr/local/bin/node; put this test's Node 24 there, so the image's user can
    // run it even when the checkout (and so node_modules/node) sits in a directory only root may enter.
    node = join(image.root, 'usr', 'local', 'bin', 'node');
    mkdirSync(dirname(node), { recursive: true });
    copyFileSync(process.execPath, node);
    chmodSync(node, 0o755);

    before_ = snapshot(image.root);
    started = performance.now();
    // The image's CMD; its `node` is this test's Node 24 (see the top of the file).
    child = spawn(node, cmd.slice(1).map(mapArg), { cwd: inImage('.'), env, uid, gid, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (c: Buffer) => { output += c.toString(); });
    child.stderr!.on('data', (c: Buffer) => { output += c.toString(); });
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`Signet exited with ${child.exitCode}:\n${output}`);
      try {
        if ((await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) })).status === 200) break;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) throw new Error(`Signet was not ready within 20 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    timings.ready_ms = Math.round(performance.now() - started);
  });

  after(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await vault?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
    process.stderr.write(`# docker-image: ${JSON.stringify(timings)}; ${notes.join('; ')}${uid === undefined ? '; not root: ran as the current user' : `; ran as uid ${uid}:${gid}`}\n`);
  });

  test('the runtime tree holds the bundle and no node_modules, sources, tests or benchmarks; the bundle has no dev-server code', () => {
    assert.deepEqual(readdirSync(inImage('dist')).sort(), ['THIRD-PARTY-LICENSES.txt', 'externaljwt.proto', 'healthcheck.mjs', 'signet.mjs', 'signet.mjs.map']);
    for (const absent of ['node_modules', 'src', 'bin', 'test', 'bench', 'scripts', '.git', 'package.json']) {
      assert.ok(!existsSync(inImage(absent)), `${absent} in the image`);
    }
    assert.ok(existsSync(join(image.root, 'etc/signet/signet.yaml')), 'the default configuration');
    // What went into the bundle, by esbuild's metafile (left in the build stage): not `signet dev`, nor the code
    // that starts and pauses Vault servers, nor anything of the tests.
    const buildStage = built.get('build')!;
    const meta = JSON.parse(readFileSync(join(buildStage.root, 'app', 'dist', 'meta.json'), 'utf8')) as { inputs: Record<string, unknown> };
    const inputs = Object.keys(meta.inputs);
    assert.ok(inputs.includes('src/cli.ts') && inputs.includes('src/server.ts'), inputs.join(', '));
    assert.deepEqual(inputs.filter((f) => /^src\/(dev|vault\/dev-server)\.ts$|^test\/|^bench\//.test(f)), []);
    // And by the text: the Vault dev server's flags and its pause (SIGSTOP) appear nowhere in what ships.
    const bundle = readFileSync(inImage('dist/signet.mjs'), 'utf8');
    for (const devOnly of ['-dev-root-token-id', '-dev-listen-address', 'SIGSTOP']) assert.ok(!bundle.includes(devOnly), `${devOnly} in the bundle`);
    // The image's `signet dev` says that it needs a checkout.
    assert.match(readFileSync(inImage('dist/signet.mjs'), 'utf8'), /needs the sources \(src\/dev\.ts\)/);
  });

  test('the Node the tests ran is the Node the image pins', () => {
    assert.equal(final.from, `node:${process.versions.node}-bookworm-slim`);
  });

  test('the CMD started Signet: /healthz and /readyz answer 200 (Vault authenticated, both keys loaded)', async () => {
    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
    const ready = await fetch(`${url}/readyz`);
    assert.equal(ready.status, 200);
    const state = await ready.json() as { ready: boolean; vault: { authenticated: boolean; method: string }; keys: Record<string, boolean> };
    assert.equal(state.ready, true);
    assert.equal(state.vault.authenticated, true);
    assert.equal(state.vault.method, 'token');
    assert.deepEqual(state.keys, { app: true, 'app-hmac': true });
    assert.match(output, /"event":"listening"/);
    assert.doesNotMatch(output, new RegExp(env.VAULT_TOKEN!), 'the Vault token reached a log line');
  });

  test('it signs with the default configuration\'s keys', async () => {
    for (const key of ['app', 'app-hmac']) {
      const response = await fetch(`${url}/v1/sign/${key}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ claims: { sub: 'image', aud: 'api' } }) });
      const body = await response.json() as { alg: string };
      assert.equal(response.status, 200, JSON.stringify(body));
      assert.equal(body.alg, key === 'app' ? 'ES256' : 'HS256');
    }
  });

  test('the public listener (SIGNET_PUBLIC_LISTEN) serves health, keys and metrics under any Host, and cannot sign', async () => {
    // The kubelet's httpGet probes name the pod IP in Host, verifiers a Service name: neither is a loopback name.
    for (const host of ['10.1.2.3:8251', 'example-app-signet.signet-example.svc:8251']) {
      for (const path of ['/healthz', '/readyz', '/.well-known/jwks.json', '/v1/jwks', '/.well-known/openid-configuration', '/metrics']) {
        const response = await rawRequest({ port: publicPort, path, headers: { host } });
        assert.equal(response.status, 200, `GET ${path} (Host ${host}): ${response.text.slice(0, 200)}`);
      }
      for (const [method, path] of [['POST', '/v1/sign/app'], ['POST', '/v1/sign'], ['POST', '/v1/verify'], ['GET', '/v1/keys']] as const) {
        const response = await rawRequest({ method, port: publicPort, path, headers: { host }, body: method === 'POST' ? { claims: {} } : undefined });
        assert.equal(response.status, 404, `${method} ${path} (Host ${host}) on the public listener`);
      }
    }
    const jwks = (await rawRequest({ port: publicPort, path: '/.well-known/jwks.json' })).body as { keys: Array<{ alg: string }> };
    assert.deepEqual(jwks.keys.map((k) => k.alg), ['ES256'], 'the ES256 key is published, the HMAC key never');
    assert.match(output, /"event":"listening_public"/);
  });

  test('the HEALTHCHECK command succeeds, for /healthz and for /readyz', async () => {
    assert.equal(healthcheck[0], 'node');
    for (const args of [healthcheck.slice(1), [healthcheck[1]!, '/readyz']]) {
      const result = await run(node, args, { cwd: inImage('.'), env, uid, gid, timeoutMs: 10_000 });
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    }
    // Without SIGNET_LISTEN it takes the address from `listen` in SIGNET_CONFIG's file, as Signet does.
    const probeConfig = join(work, 'probe.yaml');
    writeFileSync(probeConfig, `listen: ${listen}\n`);
    chmodSync(probeConfig, 0o644);
    const { SIGNET_LISTEN: _listen, ...withoutListen } = env;
    const fromFile = await run(node, healthcheck.slice(1), { cwd: inImage('.'), env: { ...withoutListen, SIGNET_CONFIG: probeConfig }, uid, gid, timeoutMs: 10_000 });
    assert.equal(fromFile.code, 0, fromFile.stderr);
  });

  test('SIGTERM stops it cleanly (exit 0); the HEALTHCHECK then fails; nothing was written into the image tree', async () => {
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    const started = performance.now();
    child!.kill('SIGTERM');
    assert.equal(await exited, 0, output);
    timings.stop_ms = Math.round(performance.now() - started);
    const down: RunResult = await run(node, healthcheck.slice(1), { cwd: inImage('.'), env, uid, gid, timeoutMs: 10_000 });
    assert.equal(down.code, 1);
    assert.match(down.stderr, /ECONNREFUSED/);
    await assert.rejects(rawRequest({ port: publicPort, path: '/healthz' }), /ECONNREFUSED/, 'the public listener outlived Signet');
    const after_ = snapshot(image.root);
    const changed = [...after_].filter(([path, sig]) => before_.get(path) !== sig).map(([path]) => path);
    const removed = [...before_.keys()].filter((path) => !after_.has(path));
    assert.deepEqual({ changed, removed }, { changed: [], removed: [] });
  });
});
