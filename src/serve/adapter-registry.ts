import { ApiError, unknownModel } from './api-error.js';
import { BASE_ROW, type AdapterBackend } from './adapter-backend.js';

/** A request's hold on the model it named: the adapter stays loaded until release(). */
export interface AdapterLease {
  /** The row name for the scheduler: the adapter's name, or "__base__". */
  readonly rowName: string;
  /** What prefix caching keys the request's KV blocks by: the row name and, for an adapter, which load of it. */
  readonly prefixNamespace: string;
  release(): void;
}

export interface AdapterInfo {
  readonly name: string;
  readonly path: string;
  readonly loaded: boolean;
  readonly inFlight: number;
}

type EntryState = 'unloaded' | 'loading' | 'loaded' | 'unloading';

interface Entry {
  readonly name: string;
  readonly path: string;
  /** Every state but "unloaded" occupies a slot: a load reserves its slot before it starts. */
  state: EntryState;
  /** Requests holding a lease. An adapter with leases is never unloaded. */
  inFlight: number;
  /** Which load this is (a number no other load of any adapter had); 0 before the first. */
  loadId: number;
  /** Use counter value at the last lease, for LRU order. */
  lastUsed: number;
  /** Set by remove(): no new leases; unloaded and forgotten once inFlight reaches 0. */
  removing: boolean;
  /** Found on demand and not loaded yet: a failed first load forgets it again, so that a fixed folder is found anew. */
  provisional: boolean;
  /** The load or unload in progress. */
  pending: { kind: 'load' | 'unload'; promise: Promise<void> } | null;
  onDrained: (() => void) | null;
}

export interface AdapterRegistryOptions {
  readonly baseModelName: string;
  /** Adapters loaded at once at most; idle ones are evicted least recently used first. */
  readonly maxLoaded: number;
  /** Runs a load or unload between scheduler steps. */
  readonly exclusive: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Hears why a load failed (the loader's message may hold server paths and file content, so clients never see it). */
  readonly onLoadError?: (name: string, error: unknown) => void;
  /**
   * Loading on demand: the folder of the adapter a request names when none by that name is served, or null when
   * there is none (the request's model is unknown). A throw is a failed load.
   */
  readonly discover?: (name: string) => Promise<string | null>;
}

/** A failed adapter load as clients see it: the adapter's name only. `cause` is the loader's error. */
export class AdapterLoadError extends ApiError {
  override name = 'AdapterLoadError';
  constructor(
    readonly adapter: string,
    override readonly cause: unknown,
  ) {
    super(400, `The adapter "${adapter}" could not be loaded; the server's log has the reason.`, 'invalid_request_error', 'adapter_load_failed');
  }
}

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** A name an adapter may have: NAME_PATTERN (so never a path: no "/", no leading "."), and not the base row's. */
function isAdapterName(name: string): boolean {
  return NAME_PATTERN.test(name) && name !== BASE_ROW;
}

/**
 * Every adapter the server knows (name -> folder) and the bounded subset that is loaded. A request for a known but
 * evicted adapter loads it again. Loads and unloads run through the scheduler's exclusive slot; a failed load
 * leaves the other adapters and the server as they were.
 */
export class AdapterRegistry {
  private readonly entries = new Map<string, Entry>();
  /** Names being looked up by discover: every request naming one waits for the same lookup. */
  private readonly discovering = new Map<string, Promise<Entry | undefined>>();
  private clock = 0;
  private loads = 0;

  constructor(
    private readonly backend: AdapterBackend,
    private readonly options: AdapterRegistryOptions,
  ) {}

  get loadedCount(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.state !== 'unloaded') n++;
    return n;
  }

  list(): AdapterInfo[] {
    return [...this.entries.values()]
      .filter((e) => !e.removing)
      .map((e) => ({ name: e.name, path: e.path, loaded: e.state === 'loaded', inFlight: e.inFlight }));
  }

  modelNames(): string[] {
    return [this.options.baseModelName, ...this.list().map((a) => a.name)];
  }

  /**
   * Adds an adapter and loads it now, so that a broken adapter is reported to whoever added it. `param` is the
   * request field the name came from, for errors.
   */
  async add(name: string, path: string, param = 'name'): Promise<void> {
    if (!isAdapterName(name)) {
      throw new ApiError(400, `"${name}" is not a valid adapter name; use 1-128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit.`, 'invalid_request_error', 'invalid_adapter_name', param);
    }
    if (name === this.options.baseModelName || this.entries.has(name)) {
      throw new ApiError(409, `A model named "${name}" is already served; delete it first or pick another name.`, 'invalid_request_error', 'adapter_exists', param);
    }
    const entry = this.register(name, path, false);
    entry.inFlight = 1;
    try {
      await this.ensureLoaded(entry);
    } catch (error) {
      this.entries.delete(name);
      throw error;
    } finally {
      this.releaseEntry(entry);
    }
  }

  /** Holds the named model for one request, loading the adapter first when it was evicted or is found on demand. */
  async acquire(model: string): Promise<AdapterLease> {
    if (model === this.options.baseModelName) return { rowName: BASE_ROW, prefixNamespace: BASE_ROW, release: () => {} };
    const entry = this.entries.get(model) ?? (await this.discovered(model));
    if (!entry || entry.removing) throw unknownModel(model, this.modelNames());
    entry.inFlight++;
    entry.lastUsed = ++this.clock;
    try {
      await this.ensureLoaded(entry);
    } catch (error) {
      this.releaseEntry(entry);
      if (entry.provisional && this.entries.get(entry.name) === entry) this.entries.delete(entry.name);
      throw error;
    }
    let released = false;
    return {
      rowName: entry.name,
      prefixNamespace: `${entry.name}#${entry.loadId}`,
      release: () => {
        if (released) return;
        released = true;
        this.releaseEntry(entry);
      },
    };
  }

  /**
   * Forgets an adapter: new requests for it fail at once; it is unloaded once its in-flight requests finish.
   * `param` is the request field the name came from, for errors.
   */
  async remove(name: string, param = 'name'): Promise<void> {
    const entry = this.entries.get(name);
    if (!entry || entry.removing) {
      throw new ApiError(404, `No adapter named "${name}" is served; GET /v1/models lists them.`, 'invalid_request_error', 'adapter_not_found', param);
    }
    entry.removing = true;
    if (entry.inFlight > 0) await new Promise<void>((resolve) => (entry.onDrained = resolve));
    while (entry.pending) await entry.pending.promise.catch(() => {});
    try {
      if (entry.state === 'loaded') await this.track(entry, 'unload', this.unload(entry));
    } catch (error) {
      entry.removing = false;
      throw error;
    }
    this.entries.delete(name);
  }

  private register(name: string, path: string, provisional: boolean): Entry {
    const entry: Entry = { name, path, state: 'unloaded', loadId: 0, inFlight: 0, lastUsed: ++this.clock, removing: false, provisional, pending: null, onDrained: null };
    this.entries.set(name, entry);
    return entry;
  }

  /**
   * The entry of an adapter found on demand (undefined when loading on demand is off or there is no such folder),
   * registered once however many requests name it at the same time. A failed lookup is a failed load: the reason
   * goes to onLoadError, the client hears the name only.
   */
  private discovered(name: string): Promise<Entry | undefined> {
    const discover = this.options.discover;
    if (!discover || !isAdapterName(name) || name === this.options.baseModelName) return Promise.resolve(undefined);
    let lookup = this.discovering.get(name);
    if (!lookup) {
      lookup = discover(name)
        .then(
          (path) => (path === null ? undefined : (this.entries.get(name) ?? this.register(name, path, true))),
          (error: unknown) => {
            this.options.onLoadError?.(name, error);
            throw new AdapterLoadError(name, error);
          },
        )
        .finally(() => this.discovering.delete(name));
      this.discovering.set(name, lookup);
    }
    return lookup;
  }

  private releaseEntry(entry: Entry): void {
    entry.inFlight--;
    if (entry.inFlight === 0 && entry.onDrained) {
      const drained = entry.onDrained;
      entry.onDrained = null;
      drained();
    }
  }

  private ensureLoaded(entry: Entry): Promise<void> {
    const pending = entry.pending;
    if (pending) {
      const again = () => this.ensureLoaded(entry);
      // A failed load fails everyone who waited for it; a failed unload leaves the adapter loaded.
      return pending.kind === 'load' ? pending.promise.then(again) : pending.promise.then(again, again);
    }
    if (entry.state === 'loaded') return Promise.resolve();
    return this.track(entry, 'load', this.load(entry));
  }

  /** Records `promise` as the entry's operation in progress until it settles. */
  private track(entry: Entry, kind: 'load' | 'unload', promise: Promise<void>): Promise<void> {
    const tracked = promise.finally(() => {
      if (entry.pending?.promise === tracked) entry.pending = null;
    });
    entry.pending = { kind, promise: tracked };
    return tracked;
  }

  private async load(entry: Entry): Promise<void> {
    entry.state = 'loading';
    try {
      await this.makeRoom(entry);
      await this.options.exclusive(() => this.backend.load(entry.name, entry.path));
      entry.state = 'loaded';
      entry.loadId = ++this.loads;
      entry.provisional = false;
    } catch (error) {
      entry.state = 'unloaded';
      if (error instanceof ApiError) throw error;
      this.options.onLoadError?.(entry.name, error);
      throw new AdapterLoadError(entry.name, error);
    }
  }

  /** Unloads least recently used idle adapters until the slots in use (the loading one included) fit. */
  private async makeRoom(loading: Entry): Promise<void> {
    while (this.loadedCount > this.options.maxLoaded) {
      let victim: Entry | null = null;
      for (const e of this.entries.values()) {
        if (e !== loading && e.state === 'loaded' && e.inFlight === 0 && !e.pending && (!victim || e.lastUsed < victim.lastUsed)) victim = e;
      }
      if (!victim) {
        throw new ApiError(503, `All ${this.options.maxLoaded} adapter slots hold adapters in use; retry later or raise --max-adapters.`, 'server_error', 'adapter_cache_full');
      }
      await this.track(victim, 'unload', this.unload(victim));
    }
  }

  /** Runs synchronously up to the exclusive call, so the entry leaves the "loaded" state before anyone else looks. */
  private async unload(entry: Entry): Promise<void> {
    entry.state = 'unloading';
    try {
      await this.options.exclusive(() => this.backend.unload(entry.name));
      entry.state = 'unloaded';
    } catch (error) {
      entry.state = 'loaded';
      throw error;
    }
  }
}
