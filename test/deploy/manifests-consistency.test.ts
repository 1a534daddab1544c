/**
 * The manifests against the server they deploy. Flags and environment variables are checked
 * against the real `attune serve --help` and `attune fetch --help`, so a renamed flag fails here,
 * and a flag added later needs no edit. Then, for the base and each overlay as rendered, the
 * container's configuration is loaded by the server's own loader from what the pod would see (its
 * args, the image's and the container's environment, the ConfigMap and Secret written where they
 * are mounted), and the probes, ports, grace period, model volume and autoscaler are checked
 * against that effective configuration. That the probe paths answer as the probes assume is
 * checked on a real server in live-server.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { loadServerConfig } from '../../src/config/load-config.js';
import type { ServerConfig } from '../../src/config/schema.js';
import { cliOptions, type CliOptions } from '../helpers/cli-help.js';
import { findObject, k8sDir, kustomizationDirs, NO_KUBECTL, readKustomization, readYamlDocuments, renderTarget, renderTargets, type K8sObject } from '../helpers/deploy-manifests.js';
import { imageEnv } from '../helpers/dockerfile.js';
import { repoRoot } from '../helpers/models-dir.js';
import { withTempDir } from '../helpers/temp-dir.js';

interface Probe {
  httpGet?: { path?: string; port?: string | number };
  periodSeconds?: number;
  failureThreshold?: number;
}
interface Mount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
interface Container {
  name: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  ports?: { name?: string; containerPort: number }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { sleep?: { seconds: number } } };
  resources?: { requests?: Record<string, string | number> };
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; runAsNonRoot?: boolean; capabilities?: { drop?: string[] } };
  volumeMounts?: Mount[];
}
interface Volume {
  name: string;
  configMap?: { name: string };
  secret?: { secretName: string; items?: { key: string; path: string }[] };
  emptyDir?: object;
  persistentVolumeClaim?: { claimName: string; readOnly?: boolean };
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean };
}
type LabelSelector = { matchLabels?: Record<string, string> };

/** Env vars the manifests may set that are not serve flags: documented in the README, read by model resolution. */
const OTHER_ENV = ['ATTUNE_CACHE_DIR', 'ATTUNE_HUB_URL', 'NODE_ENV', 'NODE_OPTIONS'];

const SERVE_CONTAINER = 'attune';

function podContainers(spec: Partial<PodSpec> | undefined): Container[] {
  return [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])];
}

/** A container runs `attune fetch` when its command says so; otherwise the image's `attune serve`. */
function commandOf(c: Container): 'fetch' | 'serve' {
  return c.command?.includes('fetch') ? 'fetch' : 'serve';
}

function flagsIn(argv: readonly string[]): string[] {
  return argv.filter((a) => a.startsWith('--')).map((a) => a.slice(2).split('=')[0]!);
}

function cpuCores(q: string | number | undefined): number {
  if (q === undefined) return 0;
  const s = String(q);
  return s.endsWith('m') ? Number(s.slice(0, -1)) / 1000 : Number(s);
}

function selects(selector: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  const want = Object.entries(selector?.matchLabels ?? {});
  return want.length > 0 && want.every(([k, v]) => labels?.[k] === v);
}

function mountFor(c: Container, path: string): Mount | undefined {
  return (c.volumeMounts ?? []).find((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
}

function flagValue(argv: readonly string[], flag: string): string | undefined {
  const i = argv.indexOf(`--${flag}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

/**
 * Writes what the pod's volumes would hold at their mount paths under `root` (ConfigMap data, the
 * Secret's items with a placeholder key), and loads the server's configuration from the
 * container's args with every mounted path redirected there.
 */
function effectiveConfig(root: string, objects: K8sObject[], pod: PodSpec, c: Container): ServerConfig {
  for (const m of c.volumeMounts ?? []) {
    const v = pod.volumes?.find((x) => x.name === m.name);
    assert.ok(v, `container ${c.name} mounts ${m.name}, which is not a volume of the pod`);
    const dir = join(root, m.mountPath);
    mkdirSync(dir, { recursive: true });
    if (v.configMap) {
      const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === v.configMap!.name) as (K8sObject & { data?: Record<string, string> }) | undefined;
      assert.ok(cm, `volume ${v.name} names ConfigMap ${v.configMap.name}, which is not rendered`);
      for (const [key, text] of Object.entries(cm.data ?? {})) writeFileSync(join(dir, key), text);
    }
    for (const item of v.secret?.items ?? []) writeFileSync(join(dir, item.path), '# placeholder written by the test\nk8s-test-key\n');
  }
  const argv = (c.args ?? []).map((a) => (a.startsWith('/') && mountFor(c, a) ? join(root, a) : a));
  const env = { ...imageEnv, ...Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? ''])) };
  const loaded = loadServerConfig({ argv, env });
  assert.equal(loaded.help, false);
  return (loaded as { config: ServerConfig }).config;
}

/** Every YAML document in deploy/k8s, plus the inline patches of each kustomization. */
function allSourceContainers(): { where: string; container: Container }[] {
  const out: { where: string; container: Container }[] = [];
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name.endsWith('.yaml') && e.name !== 'kustomization.yaml') files.push(join(dir, e.name));
    }
  };
  walk(k8sDir);
  for (const file of files) {
    for (const doc of readYamlDocuments(file) as { spec?: { template?: { spec?: Partial<PodSpec> } } }[]) {
      for (const container of podContainers(doc?.spec?.template?.spec)) out.push({ where: relative(repoRoot, file), container });
    }
  }
  // JSON patches that add arguments to a container: they patch the serving container.
  for (const dir of kustomizationDirs()) {
    for (const p of readKustomization(dir).patches ?? []) {
      if (!p.patch) continue;
      // Inline patches are YAML lists of JSON-patch operations.
      const ops = parseYaml(p.patch) as { path: string; value?: unknown }[];
      const args = ops.filter((o) => /\/containers\/\d+\/args/.test(o.path)).map((o) => String(o.value));
      if (args.length) out.push({ where: `${relative(repoRoot, dir)}/kustomization.yaml (inline patch)`, container: { name: SERVE_CONTAINER, args } });
    }
  }
  return out;
}

describe('Kubernetes manifests: consistency with the server', () => {
  let serve: CliOptions;
  let fetchCli: CliOptions;
  let adapterMetricName: string;

  before(async () => {
    serve = await cliOptions('serve');
    fetchCli = await cliOptions('fetch');
    const values = readYamlDocuments(join(repoRoot, 'deploy', 'prometheus-adapter', 'values.yaml'))[0] as { rules: { custom: { seriesQuery: string; name: { matches: string; as: string } }[] } };
    const rule = values.rules.custom[0]!;
    const series = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(rule.seriesQuery)![0];
    adapterMetricName = series.replace(new RegExp(rule.name.matches), rule.name.as.replace(/\$\{(\d+)\}/g, '$$$1'));
  });

  it('every flag and environment variable in a container, in any manifest or patch, is one its command accepts', () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const seen = new Set<string>();
    for (const { where, container } of allSourceContainers()) {
      const cli = commandOf(container) === 'fetch' ? fetchCli : serve;
      for (const flag of flagsIn([...(container.command ?? []), ...(container.args ?? [])])) {
        seen.add(flag);
        assert.ok(cli.flags.has(flag), `${where}: container ${container.name} passes --${flag}, which attune ${commandOf(container)} does not accept`);
      }
      for (const { name } of container.env ?? []) {
        const documented = OTHER_ENV.includes(name) && (name.startsWith('NODE_') || readme.includes(`\`${name}\``));
        assert.ok(serve.envs.has(name) || documented, `${where}: container ${container.name} sets ${name}, which attune serve does not read`);
      }
    }
    // Not vacuous: the flags the manifests are known to pass were found and checked.
    for (const flag of ['config', 'api-key-file', 'provider', 'model', 'dest']) assert.ok(seen.has(flag), `--${flag} was checked`);
  });

  it('every config.json under deploy/k8s is a valid --config file for the server', () => {
    const configs = kustomizationDirs().flatMap((dir) =>
      (readKustomization(dir).configMapGenerator ?? []).flatMap((g) => (g.files ?? []).map((f) => join(dir, f))),
    );
    assert.ok(configs.length >= 3, `found ${configs.length} config files`);
    for (const file of configs) {
      assert.doesNotThrow(() => loadServerConfig({ argv: ['--config', file], env: {} }), `${relative(repoRoot, file)} is refused by the server's loader`);
    }
  });

  for (const target of renderTargets()) {
    const objects = (() => {
      try {
        return renderTarget(target);
      } catch (e) {
        return e as Error;
      }
    })();
    const skip = objects === null ? NO_KUBECTL : false;
    it(`${target.name}: probes, ports, grace period, volumes and autoscaling agree with the effective configuration`, { skip }, async () => {
      if (objects instanceof Error) throw objects;
      const rendered = objects!;
      const deployment = findObject<{ spec: { selector: LabelSelector; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } } }>(rendered, 'Deployment');
      const pod = deployment.spec.template.spec;
      const podLabels = deployment.spec.template.metadata.labels;
      assert.ok(selects(deployment.spec.selector, podLabels), 'the Deployment selects its own pods');
      const main = pod.containers.find((c) => c.name === SERVE_CONTAINER);
      assert.ok(main, `a container named ${SERVE_CONTAINER}`);

      await withTempDir(async (root) => {
        const config = effectiveConfig(root, rendered, pod, main);

        // Reachable from the kubelet and the Service, on the port the probes and Service name.
        assert.ok(!['127.0.0.1', 'localhost', '::1'].includes(config.host), `the server listens on ${config.host}, unreachable from outside the pod`);
        const http = main.ports?.find((p) => p.name === 'http');
        assert.equal(http?.containerPort, config.port, 'the container port named http is the port the server listens on');
        const probes = { startupProbe: '/health', livenessProbe: '/health', readinessProbe: '/ready' } as const;
        for (const [probe, path] of Object.entries(probes)) {
          const get: Probe['httpGet'] = main[probe as keyof typeof probes]?.httpGet;
          assert.equal(get?.path, path, `${probe} is an HTTP GET of ${path}`);
          assert.ok(get?.port === 'http' || get?.port === config.port, `${probe} targets the server's port`);
        }

        // SIGKILL must not land while the pod still drains: preStop pause + drain + exit.
        const preStop = main.lifecycle?.preStop?.sleep?.seconds ?? 0;
        assert.ok(preStop > 0, 'a preStop pause lets the endpoint leave the Service before the drain starts');
        const grace = pod.terminationGracePeriodSeconds ?? 30;
        assert.ok(grace >= preStop + config.drainTimeoutSeconds + 5, `terminationGracePeriodSeconds ${grace} leaves room for preStop ${preStop} s + --drain-timeout ${config.drainTimeoutSeconds} s + exit`);

        // Configuration and keys come from the mounted ConfigMap and Secret.
        const configPath = flagValue(main.args ?? [], 'config');
        const keyPath = flagValue(main.args ?? [], 'api-key-file');
        assert.ok(configPath && keyPath, 'the server gets --config and --api-key-file');
        assert.ok(pod.volumes?.find((v) => v.name === mountFor(main, configPath)?.name)?.configMap, '--config lies in a ConfigMap volume');
        assert.ok(pod.volumes?.find((v) => v.name === mountFor(main, keyPath)?.name)?.secret, '--api-key-file lies in a Secret volume');
        assert.deepEqual(config.apiKeys, ['k8s-test-key'], 'the server reads its keys from the mounted Secret');

        // The model: a mounted directory, filled by the fetch init container or held on a claim.
        const modelsDir = config.modelsDir ?? imageEnv.ATTUNE_MODELS_DIR!;
        const modelMount = mountFor(main, modelsDir);
        assert.ok(modelMount, `the models dir ${modelsDir} is a mounted volume`);
        assert.equal(modelMount.readOnly, true, 'the server mounts its models read-only');
        const modelVolume = pod.volumes!.find((v) => v.name === modelMount.name)!;
        const fetcher = (pod.initContainers ?? []).find((c) => commandOf(c) === 'fetch');
        if (fetcher) {
          const argv = fetcher.args ?? [];
          assert.equal(flagValue(argv, 'dest'), modelsDir, 'the init container fetches into the server\'s models dir');
          assert.equal(flagValue(argv, 'model'), config.model, 'the init container fetches the model the server serves');
          assert.equal(mountFor(fetcher, modelsDir)?.name, modelMount.name, 'both containers mount the same models volume');
          assert.ok(modelVolume.emptyDir, 'a fetched model lives in an emptyDir');
        } else {
          const claim = modelVolume.persistentVolumeClaim?.claimName;
          assert.ok(claim, 'without the fetch init container the models come from a PersistentVolumeClaim');
          assert.ok(rendered.some((o) => o.kind === 'PersistentVolumeClaim' && o.metadata.name === claim), `the claim ${claim} is part of the render`);
        }

        // A read-only root filesystem needs writable /tmp and model cache.
        for (const c of podContainers(pod)) {
          const sc = c.securityContext ?? {};
          assert.equal(sc.allowPrivilegeEscalation, false, `${c.name}: no privilege escalation`);
          assert.equal(sc.readOnlyRootFilesystem, true, `${c.name}: read-only root filesystem`);
          assert.ok(sc.capabilities?.drop?.includes('ALL'), `${c.name}: drops all capabilities`);
          assert.ok(mountFor(c, '/tmp'), `${c.name}: /tmp is writable`);
        }
        assert.ok(mountFor(main, imageEnv.ATTUNE_CACHE_DIR!), 'the model cache directory is writable');
        assert.equal(pod.securityContext?.runAsNonRoot, true, 'the pod runs as non-root');

        // Sized for its engine threads.
        assert.ok(cpuCores(main.resources?.requests?.cpu) >= config.engine.threads, `the CPU request covers --threads ${config.engine.threads}`);
        if (config.engine.providers.length) assert.ok(pod.containers.some((c) => c.resources && JSON.stringify(c.resources).includes('gpu')), 'a provider other than CPU comes with a GPU request');
      });

      // Service, monitor, disruption budget and autoscaler all point at these pods and this port.
      const service = findObject<{ metadata: { labels: Record<string, string> }; spec: { selector: Record<string, string>; ports: { name: string; targetPort: string | number }[] } }>(rendered, 'Service');
      assert.ok(selects({ matchLabels: service.spec.selector }, podLabels), 'the Service selects the pods');
      const servicePort = service.spec.ports.find((p) => p.targetPort === 'http');
      assert.ok(servicePort, 'the Service forwards to the container port named http');
      const monitor = findObject<{ spec: { selector: LabelSelector; endpoints: { port: string; path: string; authorization?: object }[] } }>(rendered, 'ServiceMonitor');
      assert.ok(selects(monitor.spec.selector, service.metadata.labels), 'the ServiceMonitor selects the Service');
      assert.equal(monitor.spec.endpoints[0]?.port, servicePort.name);
      assert.equal(monitor.spec.endpoints[0]?.path, '/metrics');
      const pdb = findObject<{ spec: { selector: LabelSelector } }>(rendered, 'PodDisruptionBudget');
      assert.ok(selects(pdb.spec.selector, podLabels), 'the PodDisruptionBudget covers the pods');
      const hpa = findObject<{ spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number; maxReplicas: number; metrics: { type: string; pods?: { metric: { name: string } }; resource?: { name: string } }[] } }>(rendered, 'HorizontalPodAutoscaler');
      assert.deepEqual([hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name], ['Deployment', deployment.metadata.name]);
      assert.ok(hpa.spec.minReplicas >= 1 && hpa.spec.minReplicas <= hpa.spec.maxReplicas);
      const podsMetric = hpa.spec.metrics.find((m) => m.type === 'Pods');
      assert.equal(podsMetric?.pods?.metric.name, adapterMetricName, 'the HPA reads the metric the Prometheus Adapter rule serves');
      assert.ok(hpa.spec.metrics.some((m) => m.type === 'Resource' && m.resource?.name === 'cpu'), 'CPU is the fallback metric');
    });
  }
});
