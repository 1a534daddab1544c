/**
 * Every Kubernetes object under deploy/k8s against the Kubernetes API schemas (kubernetes-models),
 * as written and as `kubectl kustomize` renders the base and each overlay. Where kubectl is not
 * installed the render step is skipped with its reason; the resource files and the base are still
 * validated.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import {
  assembleBase,
  k8sDir,
  kubectl,
  kustomizationDirs,
  kustomize,
  NO_KUBECTL,
  readKustomization,
  readYamlDocuments,
  renderTargets,
  validateObject,
  type K8sObject,
} from '../helpers/deploy-manifests.js';

function validateAll(objects: K8sObject[], where: string): void {
  assert.ok(objects.length > 0, `${where}: no objects`);
  for (const o of objects) {
    try {
      validateObject(o);
    } catch (e) {
      assert.fail(`${where}: ${o.kind} ${o.metadata?.name}: ${(e as Error).message}`);
    }
  }
}

describe('Kubernetes manifests: schemas', () => {
  it('the schemas are live: a Deployment with a string port and no selector is refused', () => {
    const bad = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: { template: { spec: { containers: [{ name: 'a', ports: [{ containerPort: 'http' }] }] } } } };
    assert.throws(() => validateObject(bad as unknown as K8sObject), /containerPort must be integer|must have required property 'selector'/);
    assert.throws(() => validateObject({ apiVersion: 'v9', kind: 'Nope', metadata: { name: 'x' } }), /no schema for v9 Nope/);
  });

  for (const dir of kustomizationDirs()) {
    const name = relative(k8sDir, dir);
    it(`${name}: every file its kustomization names exists, and its resource files validate`, () => {
      const k = readKustomization(dir);
      const named = [
        ...(k.resources ?? []),
        ...(k.components ?? []),
        ...(k.patches ?? []).flatMap((p) => (p.path ? [p.path] : [])),
        ...(k.configMapGenerator ?? []).flatMap((g) => g.files ?? []),
      ];
      for (const f of named) assert.ok(existsSync(join(dir, f)), `${name}/kustomization.yaml names ${f}, which does not exist`);
      for (const f of (k.resources ?? []).filter((r) => r.endsWith('.yaml'))) validateAll(readYamlDocuments(join(dir, f)) as K8sObject[], `${name}/${f}`);
    });
  }

  it('the base, assembled from its files without kustomize, validates', () => {
    validateAll(assembleBase(), 'base (assembled)');
  });

  for (const target of renderTargets()) {
    it(`kubectl kustomize renders ${target.name}, and every rendered object validates`, { skip: kubectl() ? false : NO_KUBECTL }, () => {
      const objects = kustomize(target.dir);
      validateAll(objects, target.name);
      const kinds = new Set(objects.map((o) => o.kind));
      for (const kind of ['Deployment', 'Service', 'PodDisruptionBudget', 'HorizontalPodAutoscaler', 'ServiceMonitor', 'ConfigMap']) {
        assert.ok(kinds.has(kind), `${target.name} renders a ${kind}`);
      }
    });
  }
});
