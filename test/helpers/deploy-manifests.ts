/**
 * The Kubernetes manifests under deploy/k8s, as the tests read them: rendered by `kubectl kustomize`
 * where kubectl is installed, and otherwise (the base only) assembled from its resource files and
 * its generated ConfigMap, which is all the base's kustomization does besides the image tag.
 * Schemas come from kubernetes-models (the Kubernetes OpenAPI definitions compiled to validators)
 * and its prometheus-operator companion for the ServiceMonitor.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { repoRoot } from './models-dir.js';

export const k8sDir = join(repoRoot, 'deploy', 'k8s');

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

interface Validatable {
  validate(): void;
}
const MODELS: Record<string, new (data: never) => Validatable> = {
  'v1/ConfigMap': ConfigMap,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
};

/** Throws with the schema's messages if `obj` does not validate; an unknown kind is an error too. */
export function validateObject(obj: K8sObject): void {
  const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (!Model) throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}: add its model to test/helpers/deploy-manifests.ts`);
  new Model(obj as never).validate();
}

export function readYamlDocuments(file: string): unknown[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((doc) => {
    if (doc.errors.length) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    return doc.toJS() as unknown;
  });
}

export interface Kustomization {
  kind?: string;
  resources?: string[];
  components?: string[];
  configMapGenerator?: { name: string; files?: string[]; behavior?: string }[];
  patches?: { path?: string; patch?: string; target?: { kind?: string; name?: string } }[];
  images?: { name: string; newTag?: string }[];
}

export function readKustomization(dir: string): Kustomization {
  return readYamlDocuments(join(dir, 'kustomization.yaml'))[0] as Kustomization;
}

/** Folders holding a kustomization.yaml: the base, its components and its overlays. */
export function kustomizationDirs(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    if (existsSync(join(dir, 'kustomization.yaml'))) out.push(dir);
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
  };
  walk(k8sDir);
  return out.sort();
}

/** What can be deployed on its own: the base and every overlay (components only inside those). */
export function renderTargets(): { name: string; dir: string }[] {
  const overlays = join(k8sDir, 'overlays');
  return [
    { name: 'base', dir: join(k8sDir, 'base') },
    ...readdirSync(overlays)
      .sort()
      .map((name) => ({ name: `overlays/${name}`, dir: join(overlays, name) })),
  ];
}

let kubectlChecked: string | null | undefined;
/** The kubectl binary if one runs here, else null. */
export function kubectl(): string | null {
  if (kubectlChecked === undefined) {
    try {
      execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore', timeout: 20_000 });
      kubectlChecked = 'kubectl';
    } catch {
      kubectlChecked = null;
    }
  }
  return kubectlChecked;
}

export const NO_KUBECTL = 'kubectl is not installed here, so `kubectl kustomize` cannot render the overlays (the base is still checked, assembled from its files)';

export function kustomize(dir: string): K8sObject[] {
  const out = execFileSync(kubectl()!, ['kustomize', dir], { encoding: 'utf8', timeout: 60_000 });
  return parseAllDocuments(out).map((d) => d.toJS() as K8sObject);
}

/**
 * The base without kustomize: its resources, plus the ConfigMap its generator makes (under the
 * plain name; kustomize would add a content hash to it and to the Deployment's reference alike).
 */
export function assembleBase(): K8sObject[] {
  const dir = join(k8sDir, 'base');
  const k = readKustomization(dir);
  const objects = (k.resources ?? []).flatMap((f) => readYamlDocuments(join(dir, f)) as K8sObject[]);
  for (const gen of k.configMapGenerator ?? []) {
    const data = Object.fromEntries((gen.files ?? []).map((f) => [basename(f), readFileSync(join(dir, f), 'utf8')]));
    objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: gen.name }, data });
  }
  return objects;
}

/** Rendered manifests of a target: kustomize where it runs, else the assembled base (or null). */
export function renderTarget(target: { name: string; dir: string }): K8sObject[] | null {
  if (kubectl()) return kustomize(target.dir);
  return target.name === 'base' ? assembleBase() : null;
}

export function findObject<T = K8sObject>(objects: K8sObject[], kind: string): T & K8sObject {
  const found = objects.filter((o) => o.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0] as T & K8sObject;
}
