import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AdapterBackend } from '../../src/serve/adapter-backend.js';
import { AdapterLoadError, AdapterRegistry } from '../../src/serve/adapter-registry.js';

/** Records loads and unloads; folders named "broken" fail to load. */
class FakeBackend implements AdapterBackend {
  readonly loaded = new Set<string>();
  readonly log: string[] = [];
  async load(name: string, dir: string): Promise<void> {
    await new Promise((r) => setTimeout(r, 1));
    if (dir === 'broken') throw new Error('adapter_config.json is missing');
    this.loaded.add(name);
    this.log.push(`load ${name}`);
  }
  async unload(name: string): Promise<void> {
    assert.ok(this.loaded.delete(name), `${name} was not loaded`);
    this.log.push(`unload ${name}`);
  }
}

function registry(maxLoaded: number): { reg: AdapterRegistry; backend: FakeBackend; loadErrors: [string, unknown][] } {
  const backend = new FakeBackend();
  const loadErrors: [string, unknown][] = [];
  const reg = new AdapterRegistry(backend, { baseModelName: 'base', maxLoaded, exclusive: (fn) => fn(), onLoadError: (name, error) => loadErrors.push([name, error]) });
  return { reg, backend, loadErrors };
}

describe('AdapterRegistry: LRU cache of loaded adapters', () => {
  it('evicts the least recently used idle adapter to make room', async () => {
    const { reg, backend } = registry(2);
    await reg.add('a', 'dir-a');
    await reg.add('b', 'dir-b');
    (await reg.acquire('a')).release();
    await reg.add('c', 'dir-c');
    assert.deepEqual([...backend.loaded].sort(), ['a', 'c']);
    assert.equal(reg.loadedCount, 2);
  });

  it('never evicts an adapter with requests in flight, and answers 503 when every slot is busy', async () => {
    const { reg, backend } = registry(2);
    await reg.add('a', 'dir-a');
    await reg.add('b', 'dir-b');
    await reg.add('c', 'dir-c');
    const leaseC = await reg.acquire('c');
    const leaseB = await reg.acquire('b');
    await assert.rejects(reg.acquire('a'), (e: { status?: number; code?: string }) => e.status === 503 && e.code === 'adapter_cache_full');
    assert.deepEqual([...backend.loaded].sort(), ['b', 'c']);
    leaseB.release();
    const leaseA = await reg.acquire('a');
    assert.deepEqual([...backend.loaded].sort(), ['a', 'c']);
    leaseA.release();
    leaseC.release();
  });

  it('loads an adapter once for concurrent requests', async () => {
    const { reg, backend } = registry(1);
    await reg.add('a', 'dir-a');
    await reg.add('b', 'dir-b');
    const leases = await Promise.all([reg.acquire('a'), reg.acquire('a'), reg.acquire('a')]);
    assert.deepEqual(backend.log.filter((l) => l === 'load a'), ['load a', 'load a']);
    for (const l of leases) l.release();
  });

  it('forgets an adapter whose load failed and keeps the others', async () => {
    const { reg, backend } = registry(2);
    await reg.add('a', 'dir-a');
    await assert.rejects(reg.add('bad', 'broken'), { status: 400, code: 'adapter_load_failed' });
    assert.deepEqual(reg.modelNames(), ['base', 'a']);
    assert.deepEqual([...backend.loaded], ['a']);
    (await reg.acquire('a')).release();
  });

  it('names only the adapter in a failed load, and hands the loader\'s error to onLoadError', async () => {
    const { reg, loadErrors } = registry(2);
    const refusal = await reg.add('bad', 'broken').then(
      () => assert.fail('the load succeeded'),
      (e: unknown) => e,
    );
    assert.ok(refusal instanceof AdapterLoadError);
    assert.equal(refusal.message, 'The adapter "bad" could not be loaded; the server\'s log has the reason.');
    assert.equal((refusal.cause as Error).message, 'adapter_config.json is missing');
    assert.deepEqual(loadErrors.map(([name, error]) => [name, (error as Error).message]), [['bad', 'adapter_config.json is missing']]);
  });

  it('refuses duplicate, reserved and malformed names', async () => {
    const { reg } = registry(2);
    await reg.add('a', 'dir-a');
    await assert.rejects(reg.add('a', 'dir-a'), (e: { status?: number }) => e.status === 409);
    await assert.rejects(reg.add('base', 'dir-a'), (e: { status?: number }) => e.status === 409);
    for (const name of ['__base__', '../x', '', 'a b']) await assert.rejects(reg.add(name, 'dir-a'), (e: { status?: number }) => e.status === 400, name);
  });

  it('removes an adapter only after its in-flight requests finish; new requests for it fail at once', async () => {
    const { reg, backend } = registry(2);
    await reg.add('a', 'dir-a');
    const lease = await reg.acquire('a');
    let removed = false;
    const removal = reg.remove('a').then(() => (removed = true));
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(removed, false);
    assert.ok(backend.loaded.has('a'));
    await assert.rejects(reg.acquire('a'), (e: { status?: number }) => e.status === 404);
    lease.release();
    await removal;
    assert.equal(backend.loaded.size, 0);
    assert.deepEqual(reg.modelNames(), ['base']);
  });

  it('keys prefix caching by the load: a reload, or another adapter under a removed name, gets a new namespace', async () => {
    const { reg } = registry(1);
    await reg.add('a', 'dir-a');
    await reg.add('b', 'dir-b');
    const namespace = async (name: string) => {
      const lease = await reg.acquire(name);
      lease.release();
      return lease.prefixNamespace;
    };
    const first = await namespace('a');
    assert.equal(await namespace('a'), first, 'the same load keeps its namespace');
    const b = await namespace('b');
    const reloaded = await namespace('a');
    assert.equal(new Set([first, b, reloaded]).size, 3, 'b evicted a; a loaded again is another namespace');
    await reg.remove('a');
    await reg.add('a', 'dir-other');
    assert.ok(![first, reloaded].includes(await namespace('a')), 'a new adapter under an old name shares nothing');
    assert.equal(await namespace('base'), '__base__');
  });

  it('leases the base model without touching adapters', async () => {
    const { reg, backend } = registry(1);
    const lease = await reg.acquire('base');
    assert.equal(lease.rowName, '__base__');
    lease.release();
    assert.equal(backend.log.length, 0);
  });

  it('on demand: looks a name up and loads it once for concurrent requests, and lists it afterwards', async () => {
    const backend = new FakeBackend();
    const lookups: string[] = [];
    const discover = async (name: string) => {
      lookups.push(name);
      await new Promise((r) => setTimeout(r, 1));
      return name.startsWith('tenant') ? `dir-${name}` : null;
    };
    const reg = new AdapterRegistry(backend, { baseModelName: 'base', maxLoaded: 2, exclusive: (fn) => fn(), discover });
    const leases = await Promise.all([reg.acquire('tenant-1'), reg.acquire('tenant-1'), reg.acquire('tenant-1')]);
    assert.deepEqual([lookups, backend.log, reg.modelNames()], [['tenant-1'], ['load tenant-1'], ['base', 'tenant-1']]);
    for (const l of leases) l.release();
    await assert.rejects(reg.acquire('other'), { status: 404, code: 'model_not_found' });
    await assert.rejects(reg.acquire('../tenant-1'), { status: 404, code: 'model_not_found' });
    assert.deepEqual(lookups, ['tenant-1', 'other']);
  });

  it('on demand: a folder that fails to load is forgotten, and looked up again by the next request', async () => {
    const backend = new FakeBackend();
    const loadErrors: string[] = [];
    let lookups = 0;
    const discover = async () => (++lookups, 'broken');
    const reg = new AdapterRegistry(backend, { baseModelName: 'base', maxLoaded: 2, exclusive: (fn) => fn(), discover, onLoadError: (name) => loadErrors.push(name) });
    for (let i = 0; i < 2; i++) await assert.rejects(Promise.all([reg.acquire('t'), reg.acquire('t')]), { status: 400, code: 'adapter_load_failed' });
    assert.deepEqual([lookups, reg.modelNames(), loadErrors], [2, ['base'], ['t', 't']]);
  });

  it('on demand: a lookup that throws is a failed load naming only the adapter', async () => {
    const loadErrors: unknown[] = [];
    const discover = async (): Promise<string> => {
      throw new Error('/srv/adapters/t links outside the root');
    };
    const reg = new AdapterRegistry(new FakeBackend(), { baseModelName: 'base', maxLoaded: 2, exclusive: (fn) => fn(), discover, onLoadError: (_, e) => loadErrors.push(e) });
    await assert.rejects(reg.acquire('t'), { status: 400, message: 'The adapter "t" could not be loaded; the server\'s log has the reason.' });
    assert.deepEqual(loadErrors.map((e) => (e as Error).message), ['/srv/adapters/t links outside the root']);
  });
});
