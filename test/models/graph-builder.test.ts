/**
 * The ONNX graph builder's subgraphs (the branches of an `If`), run by onnxruntime: branches read the
 * enclosing graph's values and constants (outer scope), names stay unique across the model, and what
 * ONNX forbids (inputs on a branch, reading a sibling branch's values) is refused when built.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { attr, GraphBuilder } from '../../models/onnx/graph-builder.js';

describe('GraphBuilder subgraphs', () => {
  it('an If whose branches read outer values and constants runs either branch in onnxruntime', async () => {
    const g = new GraphBuilder('if_test');
    const x = g.input('x', 'float32', ['n']);
    const cond = g.input('cond', 'bool', []);
    const doubled = g.op('Mul', [x, g.constFloat(2)]);
    const then = g.subgraph('then');
    then.output(then.op('Add', [doubled, then.constFloat(1)]), 'float32', ['n']); // 2x + 1
    then.output(x, 'float32', ['n']); // an outer value, passed through
    const otherwise = g.subgraph('else');
    otherwise.output(otherwise.op('Neg', [x]), 'float32', ['n']);
    otherwise.output(doubled, 'float32', ['n']);
    const [a, b] = g.opMulti('If', [cond], 2, { then_branch: attr.graph(then), else_branch: attr.graph(otherwise) });
    g.output(a!, 'float32', ['n'], 'a');
    g.output(b!, 'float32', ['n'], 'b');
    assert.equal(g.nodeCount, 4 + 2 + 2, 'Mul, If and two output Identities; each branch\'s op and pass-through Identity');

    const session = await ort.InferenceSession.create(g.toBytes());
    const run = async (c: boolean) => {
      const out = await session.run({ x: new ort.Tensor('float32', Float32Array.from([1, -3]), [2]), cond: new ort.Tensor('bool', Uint8Array.from([c ? 1 : 0]), []) });
      return [Array.from(out.a!.data as Float32Array), Array.from(out.b!.data as Float32Array)];
    };
    assert.deepEqual(await run(true), [[3, -5], [1, -3]]);
    assert.deepEqual(await run(false), [[-1, 3], [2, -6]]);
  });

  it('refuses inputs on a branch, a sibling branch\'s values, duplicate names and serialising a branch alone', () => {
    const g = new GraphBuilder('refusals');
    const x = g.input('x', 'float32', [1]);
    const a = g.subgraph('a');
    const b = g.subgraph('b');
    const inA = a.op('Neg', [x]);
    assert.throws(() => a.input('y', 'float32', [1]), /cannot declare inputs/);
    assert.throws(() => b.op('Neg', [inA]), /belongs to another graph/);
    assert.throws(() => g.op('Neg', [inA]), /belongs to another graph/, 'a branch\'s values are not visible outside it');
    assert.throws(() => b.op('Neg', [x], {}, inA.name), /already used/, 'names are unique across the model');
    assert.throws(() => a.toBytes(), /serialised with its model/);
  });
});
