// deploy/kubernetes/: every manifest parses (yaml parseAllDocuments, no errors or warnings); the Deployment runs
// Signet as a native sidecar with a projected "vault"-audience token for Kubernetes auth, exec probes on /healthz
// and /readyz, resources and restrictive security contexts everywhere; the ConfigMap's signet.yaml is a valid
// Signet configuration (checked with Signet's own buildConfig) that agrees with the Deployment, the image and
// deploy/vault/setup.sh; metrics are scraped (annotations and a ServiceMonitor) through a proxy that forwards
// only read-only endpoints.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { buildConfig, isLoopbackListen } from '../../src/config.ts';
import { execForm, readDockerfile, stages } from '../harness/dockerfile.ts';
import { ROOT } from '../harness/ops.ts';

const DIR = join(ROOT, 'deploy', 'kubernetes');
type Obj = Record<string, any>;

const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f)).sort();
const docs: Array<{ file: string; doc: Obj }> = [];
for (const file of files) {
  for (const d of parseAllDocuments(readFileSync(join(DIR, file), 'utf8'), { uniqueKeys: true })) {
    if (d.errors.length || d.warnings.length) throw new Error(`${file}: ${[...d.errors, ...d.warnings].map((e) => e.message).join('; ')}`);
    const doc = d.toJS() as Obj | null;
    if (doc) docs.push({ file, doc });
  }
}
const byKind = (kind: string) => docs.filter((d) => d.doc.kind === kind).map((d) => d.doc);
const deployment = byKind('Deployment')[0]!;
const pod = deployment.spec.template.spec as Obj;
const initContainers = (pod.initContainers ?? []) as Obj[];
const containers = [...initContainers, ...(pod.containers as Obj[])];
const signet = initContainers.find((c) => c.name === 'signet')!;
const configMap = byKind('ConfigMap').find((c) => c.metadata.name === 'signet-config')!;
const signetYaml = parse(configMap.data['signet.yaml'] as string) as Obj;

const finalStage = stages(readDockerfile()).at(-1)!;
const imageCmd = execForm(finalStage.instructions.find((i) => i.keyword === 'CMD')!.args)!;
const imageWorkdir = finalStage.instructions.filter((i) => i.keyword === 'WORKDIR').at(-1)!.args;
const imageUser = Number(finalStage.instructions.filter((i) => i.keyword === 'USER').at(-1)!.args.split(':')[0]);
const setupDefault = (name: string): string => {
  const match = new RegExp(`^${name}=\\$\\{${name}:-([^}]*)\\}$`, 'm').exec(readFileSync(join(ROOT, 'deploy', 'vault', 'setup.sh'), 'utf8'));
  if (!match) throw new Error(`setup.sh has no default for ${name}`);
  return match[1]!;
};

/** nginx `location [=] PATH { ... }` blocks, with nested braces matched. */
function nginxLocations(conf: string): Array<{ exact: boolean; path: string; body: string }> {
  const text = conf.replace(/#.*$/gm, '');
  const out: Array<{ exact: boolean; path: string; body: string }> = [];
  for (const m of text.matchAll(/\blocation\s+(=\s+)?(\S+)\s*\{/g)) {
    let depth = 1;
    let i = m.index + m[0].length;
    const start = i;
    for (; i < text.length && depth > 0; i++) {
      if (text[i] === '{') depth++;
      else if (text[i] === '}') depth--;
    }
    if (depth !== 0) throw new Error(`unbalanced braces after location ${m[2]}`);
    out.push({ exact: Boolean(m[1]), path: m[2]!, body: text.slice(start, i - 1) });
  }
  return out;
}

test('every manifest parses, and names its apiVersion, kind, name and (where namespaced) the example namespace', () => {
  assert.ok(files.length >= 5, files.join(', '));
  for (const { file, doc } of docs) {
    if (doc.kind === 'Kustomization') continue;
    assert.ok(doc.apiVersion && doc.kind && doc.metadata?.name, `${file}: apiVersion, kind, metadata.name`);
    if (doc.kind !== 'Namespace') assert.equal(doc.metadata.namespace, 'signet-example', `${file}: ${doc.kind} ${doc.metadata.name}`);
  }
  for (const kind of ['Namespace', 'ServiceAccount', 'ConfigMap', 'Deployment', 'Service', 'ServiceMonitor']) {
    assert.ok(byKind(kind).length > 0, `no ${kind}`);
  }
});

test('kustomization.yaml lists every other manifest, and nothing that does not exist', () => {
  const kustomization = byKind('Kustomization')[0]!;
  const listed = (kustomization.resources as string[]).slice().sort();
  assert.deepEqual(listed, files.filter((f) => f !== 'kustomization.yaml'));
});

test('Signet is a native sidecar: an init container with restartPolicy Always, started before the app', () => {
  assert.ok(signet, 'no init container named signet');
  assert.equal(signet.restartPolicy, 'Always');
  assert.match(signet.image, /:[\w.-]+$/, 'the image has a tag');
  assert.doesNotMatch(signet.image, /:latest$/);
  assert.equal(signet.command, undefined, 'the image\'s CMD runs Signet');
  assert.equal(signet.args, undefined);
  for (const c of containers) assert.doesNotMatch(String(c.image), /:latest$|^[^:]+$/, `${c.name}: pin the image tag`);
  const app = (pod.containers as Obj[]).find((c) => c.name === 'app')!;
  const signetUrl = (app.env as Obj[]).find((e) => e.name === 'SIGNET_URL')?.value;
  assert.equal(signetUrl, `http://${signetYaml.listen}`, 'the app reaches Signet where it listens');
});

test('Vault Kubernetes auth: a projected service-account token with audience vault, mounted where signet.yaml reads it', () => {
  const volume = (pod.volumes as Obj[]).find((v) => v.projected?.sources?.some((s: Obj) => s.serviceAccountToken));
  assert.ok(volume, 'no projected service-account token volume');
  const source = (volume.projected.sources as Obj[]).find((s) => s.serviceAccountToken)!.serviceAccountToken as Obj;
  assert.equal(source.audience, 'vault');
  assert.ok(source.expirationSeconds >= 600 && source.expirationSeconds <= 3600, `expirationSeconds ${source.expirationSeconds}`);
  const mount = (signet.volumeMounts as Obj[]).find((m) => m.name === volume.name)!;
  assert.ok(mount, 'the token volume is not mounted in the signet container');
  assert.equal(mount.readOnly, true);
  assert.equal(signetYaml.vault.auth.method, 'kubernetes');
  assert.equal(signetYaml.vault.auth.token_file, posix.join(mount.mountPath, source.path));
  // The default API token is not mounted anywhere: the projected one is all Signet needs.
  assert.equal(pod.automountServiceAccountToken, false);
  // The role, service account, namespace and audience are those deploy/vault/setup.sh binds.
  assert.equal(signetYaml.vault.auth.role, setupDefault('K8S_ROLE'));
  assert.equal(pod.serviceAccountName, setupDefault('K8S_SERVICE_ACCOUNT'));
  assert.equal(deployment.metadata.namespace, setupDefault('K8S_NAMESPACE'));
  assert.equal(source.audience, setupDefault('K8S_AUDIENCE'));
  const sa = byKind('ServiceAccount').find((s) => s.metadata.name === pod.serviceAccountName);
  assert.ok(sa, `no ServiceAccount ${pod.serviceAccountName}`);
});

test('signet.yaml in the ConfigMap is a valid Signet configuration, on loopback, mounted at the image\'s --config path', () => {
  const config = buildConfig(signetYaml, {});
  assert.equal(config.vault.auth.method, 'kubernetes');
  assert.ok(isLoopbackListen(config.listen));
  const configPath = imageCmd[imageCmd.indexOf('--config') + 1]!;
  const mount = (signet.volumeMounts as Obj[]).find((m) => m.name === 'signet-config')!;
  const volume = (pod.volumes as Obj[]).find((v) => v.name === 'signet-config')!;
  assert.equal(volume.configMap.name, configMap.metadata.name);
  const item = (volume.configMap.items as Obj[] | undefined)?.find((i) => i.key === 'signet.yaml');
  assert.equal(posix.join(mount.mountPath, item?.path ?? 'signet.yaml'), configPath);
  // Keys match the example policy (vault-policy.hcl) and setup.sh's default keys.
  assert.deepEqual(config.keys.map((k) => `${k.name}:${k.alg}`), ['app:ES256', 'app-hmac:HS256']);
  assert.deepEqual(setupDefault('SIGNET_KEYS').replace(/^"|"$/g, '').split(' ').map((s) => s.split(':').filter((_, i) => i !== 1).join(':')), ['app:ES256', 'app-hmac:HS256']);
});

test('probes: startup and readiness on /readyz, liveness on /healthz, run by bin/healthcheck.js inside the image', () => {
  const path = (probe: Obj | undefined) => {
    assert.ok(probe?.exec, 'Signet listens on loopback: kubelet httpGet probes would miss it, so probes exec');
    const [node, script, target] = probe.exec.command as string[];
    assert.equal(node, 'node');
    assert.ok(script!.startsWith(`${imageWorkdir}/`), `${script} is not under the image's WORKDIR ${imageWorkdir}`);
    assert.ok(existsSync(join(ROOT, posix.relative(imageWorkdir, script!))), `${script} is not in the image`);
    assert.ok(probe.timeoutSeconds >= 2, 'Node needs a moment to start');
    return target;
  };
  assert.equal(path(signet.startupProbe), '/readyz');
  assert.equal(path(signet.readinessProbe), '/readyz');
  assert.equal(path(signet.livenessProbe), '/healthz');
  assert.ok(signet.startupProbe.periodSeconds * signet.startupProbe.failureThreshold >= 60, 'time to log in to Vault and load keys');
  for (const c of containers) assert.ok(c.readinessProbe && c.livenessProbe, `${c.name}: readiness and liveness probes`);
});

test('every container has resource requests and a memory limit', () => {
  for (const c of containers) {
    assert.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory, `${c.name}: requests`);
    assert.ok(c.resources?.limits?.memory, `${c.name}: memory limit`);
  }
});

test('restrictive security contexts: non-root, read-only root, no capabilities, no escalation, RuntimeDefault seccomp', () => {
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
  assert.ok(!pod.hostNetwork && !pod.hostPID && !pod.hostIPC);
  for (const c of containers) {
    const sc = c.securityContext as Obj;
    assert.ok(sc, `${c.name}: no securityContext`);
    assert.equal(sc.runAsNonRoot, true, `${c.name}: runAsNonRoot`);
    assert.ok(Number.isInteger(sc.runAsUser) && sc.runAsUser > 0, `${c.name}: runAsUser`);
    assert.equal(sc.readOnlyRootFilesystem, true, `${c.name}: readOnlyRootFilesystem`);
    assert.equal(sc.allowPrivilegeEscalation, false, `${c.name}: allowPrivilegeEscalation`);
    assert.notEqual(sc.privileged, true, `${c.name}: privileged`);
    assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${c.name}: capabilities.drop`);
    assert.equal(sc.capabilities?.add, undefined, `${c.name}: capabilities.add`);
    assert.equal(sc.seccompProfile?.type ?? pod.securityContext.seccompProfile.type, 'RuntimeDefault');
  }
  assert.equal(signet.securityContext.runAsUser, imageUser, 'Signet runs as the image\'s USER');
  // Volumes are of the kinds the restricted Pod Security Standard allows.
  for (const v of pod.volumes as Obj[]) {
    assert.ok(v.configMap || v.emptyDir || v.projected || v.secret, `volume ${v.name}: ${Object.keys(v).join(', ')}`);
  }
  const ns = byKind('Namespace')[0]!;
  assert.equal(ns.metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted');
});

test('metrics are scraped: annotations and a ServiceMonitor, both on a port some container serves', () => {
  const annotations = deployment.spec.template.metadata.annotations as Obj;
  assert.equal(annotations['prometheus.io/scrape'], 'true');
  assert.equal(annotations['prometheus.io/path'], '/metrics');
  const ports = containers.flatMap((c) => (c.ports ?? []) as Obj[]);
  assert.ok(ports.some((p) => String(p.containerPort) === annotations['prometheus.io/port']), `no container port ${annotations['prometheus.io/port']}`);

  const monitor = byKind('ServiceMonitor')[0]!;
  const service = byKind('Service').find((s) => Object.entries(monitor.spec.selector.matchLabels as Obj).every(([k, v]) => s.metadata.labels?.[k] === v));
  assert.ok(service, 'the ServiceMonitor selects no Service');
  const endpoint = (monitor.spec.endpoints as Obj[])[0]!;
  assert.equal(endpoint.path, '/metrics');
  const servicePort = (service.spec.ports as Obj[]).find((p) => p.name === endpoint.port)!;
  assert.ok(servicePort, `the Service has no port ${endpoint.port}`);
  assert.ok(ports.some((p) => p.name === servicePort.targetPort || p.containerPort === servicePort.targetPort), `no container port ${servicePort.targetPort}`);
  const podLabels = deployment.spec.template.metadata.labels as Obj;
  assert.ok(Object.entries(service.spec.selector as Obj).every(([k, v]) => podLabels[k] === v), 'the Service does not select the pods');
});

test('the public proxy forwards only read-only GETs to Signet; signing is not reachable from outside the pod', () => {
  const conf = byKind('ConfigMap').find((c) => c.metadata.name === 'signet-public-proxy')!.data['signet-public.conf'] as string;
  const allowed = new Set(['/.well-known/jwks.json', '/.well-known/openid-configuration', '/v1/jwks', '/metrics', '/healthz', '/readyz']);
  const locations = nginxLocations(conf);
  assert.ok(locations.length >= allowed.size + 1, `${locations.length} locations parsed`);
  const proxied = locations.filter((l) => /proxy_pass/.test(l.body));
  assert.deepEqual(new Set(proxied.map((l) => l.path)), allowed);
  for (const l of proxied) {
    assert.ok(l.exact, `${l.path}: exact match only`);
    assert.match(l.body, /limit_except GET \{ deny all; \}/, `${l.path}: GET (and HEAD) only`);
    assert.match(l.body, new RegExp(`proxy_pass http://${signetYaml.listen.replace(/\./g, '\\.')};`), `${l.path}: proxies to Signet's listen address`);
  }
  assert.match(conf, /proxy_set_header Host (localhost|127\.0\.0\.1);/, 'Signet answers only requests naming a loopback host');
  const fallback = locations.find((l) => l.path === '/' && !l.exact);
  assert.match(fallback?.body ?? '', /return 404;/);
  assert.doesNotMatch(conf.replace(/#.*$/gm, ''), /\/v1\/sign|\/v1\/verify|\/v1\/keys/);
  const publicPort = Number(/listen\s+(\d+);/.exec(conf)![1]);
  const proxy = initContainers.find((c) => c.name === 'signet-public')!;
  assert.equal(proxy.restartPolicy, 'Always');
  assert.ok((proxy.ports as Obj[]).some((p) => p.containerPort === publicPort));
  assert.equal(signetYaml.public_url.replace(/^.*:(\d+)$/, '$1'), String(publicPort), 'the discovery document points at the proxy');
});
