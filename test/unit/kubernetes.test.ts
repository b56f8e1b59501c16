// deploy/kubernetes/: every manifest parses (yaml parseAllDocuments, no errors or warnings); the Deployment runs
// Signet as a native sidecar with a projected "vault"-audience token for Kubernetes auth, resources and restrictive
// security contexts everywhere, and no other sidecar (the nginx proxy that once exposed the read-only endpoints is
// gone); the ConfigMap's signet.yaml is a valid Signet configuration (checked with Signet's own buildConfig) whose
// signing listener stays on loopback and whose public_listen is the Signet container's one declared port; httpGet
// probes (/healthz, /readyz), the Prometheus annotations, the Service and the ServiceMonitor all use that port; and
// the public app Signet builds from this configuration serves those paths and no way to sign.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { buildPublicApp } from '../../src/app.ts';
import { buildConfig } from '../../src/config.ts';
import { isLoopbackListen, splitHostPort } from '../../src/security/hosts.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createServices } from '../../src/services.ts';
import { execForm, readDockerfile, stageEnv, stages } from '../harness/dockerfile.ts';
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
const imageUser = Number(finalStage.instructions.filter((i) => i.keyword === 'USER').at(-1)!.args.split(':')[0]);
const setupDefault = (name: string): string => {
  const match = new RegExp(`^${name}=\\$\\{${name}:-([^}]*)\\}$`, 'm').exec(readFileSync(join(ROOT, 'deploy', 'vault', 'setup.sh'), 'utf8'));
  if (!match) throw new Error(`setup.sh has no default for ${name}`);
  return match[1]!;
};

const signetPorts = (signet?.ports ?? []) as Obj[];
const publicPort = signetPorts.find((p) => p.name === 'public');
/** The Signet container port a probe, Service or monitor names (by name or by number). */
function signetPort(ref: unknown): Obj | undefined {
  return signetPorts.find((p) => p.name === ref || p.containerPort === ref);
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

test('no proxy sidecar: Signet and the app are the only containers, signet.yaml the only ConfigMap', () => {
  // Signet's own public_listen serves the read-only endpoints; the nginx signet-public proxy it replaced is gone.
  assert.deepEqual(initContainers.map((c) => c.name), ['signet']);
  assert.deepEqual((pod.containers as Obj[]).map((c) => c.name), ['app']);
  for (const c of containers) assert.doesNotMatch(String(c.image), /nginx|envoy|haproxy|caddy|traefik/i, `${c.name}: ${c.image}`);
  assert.deepEqual(byKind('ConfigMap').map((c) => c.metadata.name), ['signet-config']);
  assert.deepEqual(Object.keys(configMap.data as Obj), ['signet.yaml']);
  // Every volume is mounted somewhere: nothing is left over from the proxy.
  const mounted = new Set(containers.flatMap((c) => ((c.volumeMounts ?? []) as Obj[]).map((m) => m.name as string)));
  for (const v of pod.volumes as Obj[]) assert.ok(mounted.has(v.name), `volume ${v.name} is mounted by no container`);
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
  // Signing needs no caller token only because nothing outside the pod reaches the signing listener.
  assert.equal(config.callers, undefined);
  assert.ok(!config.listen.startsWith('unix:'), 'the app reaches Signet over the pod\'s loopback');
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

test('public_listen: every interface, on the Signet container\'s one declared port, apart from the signing listener', () => {
  const config = buildConfig(signetYaml, {});
  assert.ok(config.publicListen, 'signet.yaml sets no public_listen');
  const { host, port } = splitHostPort(config.publicListen);
  // The kubelet, Prometheus and the Service connect to the pod IP: a loopback public listener would miss them all.
  assert.ok(['0.0.0.0', '::'].includes(host), `public_listen ${config.publicListen}: bind every interface`);
  assert.ok(!isLoopbackListen(config.publicListen));
  assert.notEqual(port, splitHostPort(config.listen).port, 'the public listener and the signing listener share a port');
  // Signet declares exactly the public listener's port, named so probes, the Service and the monitor can use it.
  assert.ok(publicPort, 'the signet container declares no port named public');
  assert.deepEqual(signetPorts.map((p) => [p.name, p.containerPort, p.protocol ?? 'TCP']), [['public', port, 'TCP']]);
  // The signing listener is no pod port: no container declares it, nothing could expose it.
  const signingPort = splitHostPort(config.listen).port;
  for (const c of containers) {
    for (const p of (c.ports ?? []) as Obj[]) assert.notEqual(p.containerPort, signingPort, `${c.name} declares the signing port`);
  }
  assert.equal(pod.hostNetwork, undefined, 'with the host\'s network the loopback would be the node\'s');
});

test('probes: httpGet on the public port; startup and readiness on /readyz, liveness on /healthz', () => {
  const path = (probe: Obj | undefined) => {
    assert.ok(probe?.httpGet, 'the public listener answers the kubelet: probes are httpGet');
    assert.equal(probe.exec, undefined);
    assert.equal(probe.tcpSocket, undefined);
    assert.equal(probe.grpc, undefined);
    const get = probe.httpGet as Obj;
    assert.equal(signetPort(get.port), publicPort, `probe port ${get.port} is not Signet's public port`);
    assert.ok(get.scheme === undefined || get.scheme === 'HTTP', `scheme ${get.scheme}: the public listener is plain HTTP`);
    assert.equal(get.host, undefined, 'the kubelet probes the pod IP');
    assert.equal(get.httpHeaders, undefined, 'the public listener needs no Host header');
    assert.ok(probe.timeoutSeconds >= 1 && probe.periodSeconds >= 1);
    return get.path;
  };
  assert.equal(path(signet.startupProbe), '/readyz');
  assert.equal(path(signet.readinessProbe), '/readyz');
  assert.equal(path(signet.livenessProbe), '/healthz');
  assert.ok(signet.startupProbe.periodSeconds * signet.startupProbe.failureThreshold >= 60, 'time to log in to Vault and load keys');
  // /readyz turns 503 in a Vault outage: liveness must not restart Signet for that, so it watches /healthz only.
  assert.ok(signet.livenessProbe.failureThreshold >= 3);
  for (const c of containers) assert.ok(c.readinessProbe && c.livenessProbe, `${c.name}: readiness and liveness probes`);
});

test('Signet\'s container sets the image\'s memory settings (NODE_OPTIONS, MALLOC_ARENA_MAX) with the Dockerfile\'s values', () => {
  const imageEnv = new Map(Object.entries(stageEnv(stages(readDockerfile()).at(-1)!)));
  const env = new Map((signet.env as Array<{ name: string; value?: string }>).map((e) => [e.name, e.value]));
  for (const name of ['NODE_OPTIONS', 'MALLOC_ARENA_MAX']) {
    assert.ok(imageEnv.has(name), `the Dockerfile sets no ${name}`);
    assert.equal(env.get(name), imageEnv.get(name), `${name} in deployment.yaml`);
  }
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

test('metrics are scraped on the public port: annotations and a ServiceMonitor', () => {
  const annotations = deployment.spec.template.metadata.annotations as Obj;
  assert.equal(annotations['prometheus.io/scrape'], 'true');
  assert.equal(annotations['prometheus.io/path'], '/metrics');
  assert.equal(annotations['prometheus.io/port'], String(publicPort?.containerPort), 'the annotations scrape Signet\'s public listener');

  const monitor = byKind('ServiceMonitor')[0]!;
  const service = byKind('Service').find((s) => Object.entries(monitor.spec.selector.matchLabels as Obj).every(([k, v]) => s.metadata.labels?.[k] === v));
  assert.ok(service, 'the ServiceMonitor selects no Service');
  assert.equal(byKind('Service').filter((s) => Object.entries(monitor.spec.selector.matchLabels as Obj).every(([k, v]) => s.metadata.labels?.[k] === v)).length, 1);
  const endpoints = monitor.spec.endpoints as Obj[];
  assert.equal(endpoints.length, 1);
  const endpoint = endpoints[0]!;
  assert.equal(endpoint.path, '/metrics');
  assert.ok(endpoint.scheme === undefined || endpoint.scheme === 'http');
  const servicePort = (service.spec.ports as Obj[]).find((p) => p.name === endpoint.port)!;
  assert.ok(servicePort, `the Service has no port ${endpoint.port}`);
  assert.equal(signetPort(servicePort.targetPort), publicPort, `the monitored Service port targets ${servicePort.targetPort}, not Signet's public port`);
});

test('the Service publishes only the public listener, for the pods, also while they are not ready', () => {
  const services = byKind('Service');
  assert.equal(services.length, 1);
  const service = services[0]!;
  const podLabels = deployment.spec.template.metadata.labels as Obj;
  assert.ok(Object.entries(service.spec.selector as Obj).every(([k, v]) => podLabels[k] === v), 'the Service does not select the pods');
  const ports = service.spec.ports as Obj[];
  assert.equal(ports.length, 1, 'one port: the public listener');
  assert.equal(signetPort(ports[0]!.targetPort), publicPort, `the Service targets ${ports[0]!.targetPort}, not Signet's public port`);
  assert.equal(ports[0]!.port, publicPort?.containerPort, 'the Service port is the public listener\'s (public_url names it)');
  assert.ok(service.spec.type === undefined || service.spec.type === 'ClusterIP', `type ${service.spec.type}`);
  // A Vault outage longer than readiness.vault_outage_tolerance makes /readyz (and the pods) not ready; the JWKS
  // still serves the last good key state then.
  assert.equal(service.spec.publishNotReadyAddresses, true);

  // The discovery document's jwks_uri points at this Service, on this port.
  const url = new URL(signetYaml.public_url as string);
  assert.equal(url.protocol, 'http:');
  assert.match(url.hostname, new RegExp(`^${service.metadata.name}\\.${service.metadata.namespace}\\.svc(\\.cluster\\.local)?$`));
  assert.equal(url.port, String(ports[0]!.port));
  assert.equal(url.pathname, '/');
});

test('the public app Signet builds from this signet.yaml serves the probed, scraped and published paths, and cannot sign', async () => {
  const config = buildConfig(signetYaml, {});
  const log = createLogger('silent');
  const app = await buildPublicApp(config, createServices(config, log));
  try {
    const served = [
      signet.startupProbe.httpGet.path, signet.readinessProbe.httpGet.path, signet.livenessProbe.httpGet.path,
      deployment.spec.template.metadata.annotations['prometheus.io/path'], (byKind('ServiceMonitor')[0]!.spec.endpoints as Obj[])[0]!.path,
      '/.well-known/jwks.json', '/v1/jwks', '/.well-known/openid-configuration',
    ] as string[];
    for (const url of served) assert.ok(app.hasRoute({ method: 'GET', url }), `the public listener does not serve GET ${url}`);
    for (const [method, url] of [['POST', '/v1/sign/:key'], ['POST', '/v1/sign'], ['POST', '/v1/verify'], ['GET', '/v1/keys']] as const) {
      assert.equal(app.hasRoute({ method, url }), false, `the public listener serves ${method} ${url}`);
    }
    // The kubelet names the pod IP in Host, verifiers the Service: the public listener answers both.
    for (const host of [`10.1.2.3:${publicPort?.containerPort}`, new URL(signetYaml.public_url as string).host]) {
      const health = await app.inject({ method: 'GET', url: '/healthz', headers: { host } });
      assert.equal(health.statusCode, 200, `Host ${host}: ${health.body}`);
      const sign = await app.inject({ method: 'POST', url: '/v1/sign/app', headers: { host, 'content-type': 'application/json' }, payload: '{"claims":{}}' });
      assert.equal(sign.statusCode, 404, `Host ${host}: POST /v1/sign/app answered ${sign.statusCode}`);
    }
  } finally {
    await app.close();
  }
});
