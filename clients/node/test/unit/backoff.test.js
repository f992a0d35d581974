import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from '../../src/index.js';

test('backoff grows exponentially up to the cap', () => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0 });
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => b.next()), [100, 200, 400, 800, 1000, 1000]);
  b.reset();
  assert.equal(b.next(), 100);
});

test('backoff jitter stays within [base * (1 - jitter), base]', () => {
  const low = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5, random: () => 0.999999 });
  const high = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5, random: () => 0 });
  assert.equal(low.next(), 500);
  assert.equal(high.next(), 1000);
  const real = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5 });
  for (let i = 0; i < 100; i++) {
    const d = real.next();
    assert.ok(d >= 500 && d <= 1000, `delay ${d}`);
  }
});

test('backoff rejects nonsense settings', () => {
  assert.throws(() => new Backoff({ initialMs: 0 }), RangeError);
  assert.throws(() => new Backoff({ initialMs: 100, maxMs: 50 }), RangeError);
});
