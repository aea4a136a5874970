/**
 * What the serving benches share: the base model and adapters named by `--model DIR --adapter NAME=DIR ...`
 * (tiny-llama and its four fixture adapters when neither is given), and `loraforge serve` started from the built CLI
 * in a child process on a free loopback port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { fixturePath } from '../test/helpers/fixtures.js';

export interface AdapterArg {
  readonly name: string;
  readonly path: string;
}

export const FIXTURE_ADAPTERS = ['lora', 'lora_qv', 'rslora', 'dora'];

/**
 * The base model folder and adapters of `--model` and the repeated `--adapter NAME=DIR`; without --model the
 * fixture tiny-llama, with its fixture adapters unless --adapter names some.
 */
export function modelAndAdapters(model: string | undefined, specs: readonly string[] | undefined): { modelDir: string; adapters: AdapterArg[] } {
  const adapters = (specs ?? []).map((spec) => {
    const eq = spec.indexOf('=');
    if (eq <= 0) throw new Error(`--adapter needs NAME=DIR, got ${JSON.stringify(spec)}.`);
    return { name: spec.slice(0, eq), path: spec.slice(eq + 1) };
  });
  return {
    modelDir: model ?? fixturePath('tiny-llama'),
    adapters: model || adapters.length > 0 ? adapters : FIXTURE_ADAPTERS.map((v) => ({ name: v, path: fixturePath(`tiny-llama-${v}`) })),
  };
}

export interface ServeChild {
  readonly child: ChildProcess;
  /** e.g. http://127.0.0.1:PORT/v1 */
  readonly baseURL: string;
  /** Sends SIGTERM and resolves once the server has exited. */
  stop(): Promise<void>;
}

/**
 * Starts `loraforge serve --model DIR --port 0 --adapter ... [serveArgs]` under `node [nodeArgs]`; resolves once it
 * listens, rejects with its output when it exits first.
 */
export async function startServe(opts: { modelDir: string; adapters: readonly AdapterArg[]; nodeArgs?: readonly string[]; serveArgs?: readonly string[] }): Promise<ServeChild> {
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const argv = [...(opts.nodeArgs ?? []), cli, 'serve', '--model', opts.modelDir, '--port', '0', ...opts.adapters.flatMap((a) => ['--adapter', `${a.name}=${a.path}`]), ...(opts.serveArgs ?? [])];
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let output = '';
  const baseURL = await new Promise<string>((resolve, reject) => {
    const onData = (data: Buffer) => {
      output += data.toString();
      const match = /listening on (http:\/\/\S+\/v1)/.exec(output);
      if (match) resolve(match[1]!);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`loraforge serve exited with code ${code} before listening: ${output.trim()}`)));
  });
  return {
    child,
    baseURL,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
